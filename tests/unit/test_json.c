/*
 * test_json.c - json_member(): the bytes of a value, cut from the raw text
 * exactly as written (json_load_object itself is tested in test_message.c,
 * through the message parser, and by fuzz_message); json_load_object_max():
 * the limit of values, counted before jansson builds anything.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

/* The value at PATH in TEXT as a string ("" when not found), for CHECK_STR. */
static const char *
member(const char *text, const char *const *path, size_t depth)
{
	static char buf[4096];
	json_t *root = NULL;
	bool big = false;
	char err[128];
	size_t start, n;

	/* Only texts json_load_object() accepted are ever passed. */
	if (json_load_object(text, strlen(text), &root, &big, err, sizeof(err)) < 0) {
		json_decref(root);
		return "(not loaded)";
	}
	json_decref(root);
	if (json_member(text, strlen(text), path, depth, &start, &n) < 0)
		return "";
	snprintf(buf, sizeof(buf), "%.*s", (int)n, text + start);
	return buf;
}

static void
test_top_level_member(void)
{
	static const char *const data[] = {"data"};

	CHECK_STR(member("{\"code\":200,\"data\":{\"a\":1}}", data, 1), "{\"a\":1}");
	CHECK_STR(member("{ \"data\" :\t[1, 2 ,3] , \"code\":200}", data, 1), "[1, 2 ,3]");
	CHECK_STR(member("{\"data\":\"x\"}", data, 1), "\"x\"");
	CHECK_STR(member("{\"data\":null}", data, 1), "null");
	CHECK_STR(member("{\"data\":-12.5e3}", data, 1), "-12.5e3");
}

static void
test_nested_path(void)
{
	static const char *const path[] = {"data", "result"};

	CHECK_STR(member("{\"data\":{\"total\":2,\"result\":[{\"id\":1},{\"id\":2}]},\"code\":200}",
			 path, 2),
		  "[{\"id\":1},{\"id\":2}]");
	/* An inner key of the same name at another depth is not the member. */
	CHECK_STR(member("{\"data\":{\"x\":{\"result\":1}},\"result\":2}", path, 2), "");
}

static void
test_numbers_beyond_64_bits_stay_exact(void)
{
	static const char *const data[] = {"data"};

	CHECK_STR(member("{\"data\":{\"id\":123456789012345678901234567890,\"f\":1.5}}", data, 1),
		  "{\"id\":123456789012345678901234567890,\"f\":1.5}");
}

static void
test_strings_with_brackets_and_escapes(void)
{
	static const char *const data[] = {"data"};

	CHECK_STR(member("{\"note\":\"}{\\\"data\\\":1]\",\"data\":{\"s\":\"a}\\\\\"}}", data, 1),
		  "{\"s\":\"a}\\\\\"}");
	/* A key that merely contains the name is another key. */
	CHECK_STR(member("{\"xdata\":1,\"datax\":2}", data, 1), "");
}

static void
test_missing_or_not_an_object(void)
{
	static const char *const path[] = {"data", "result"};

	CHECK_STR(member("{\"code\":500}", path, 1), "");
	CHECK_STR(member("{\"data\":[1,2]}", path, 2), "");
	CHECK_STR(member("{\"data\":\"result\"}", path, 2), "");
	CHECK_STR(member("{}", path, 1), "");
	CHECK_INT(json_member("{\"data\":1}", 10, path, 0, &(size_t){0}, &(size_t){0}), -1);
}

/* TEXT loaded with at most MAX values: 0, -1 or JSON_TOO_MANY_VALUES. */
static int
load_max(const char *text, size_t max, char *err, size_t errlen)
{
	json_t *root = NULL;
	bool big = false;
	int rc = json_load_object_max(text, strlen(text), max, &root, &big, err, errlen);

	CHECK(rc != JSON_TOO_MANY_VALUES || root == NULL);
	json_decref(root);
	return rc;
}

static void
test_values_are_counted_exactly(void)
{
	/* The object, "a", [...], "s", 1, true, false, null, {}, "b", -1.5e9: 11. */
	static const char text[] = "{\"a\" : [\"s\", 1 ,true,false, null,{}], \"b\":-1.5e9}";
	char err[128];

	CHECK_INT(load_max(text, 11, err, sizeof(err)), 0);
	CHECK_INT(load_max(text, 10, err, sizeof(err)), JSON_TOO_MANY_VALUES);
	CHECK_STR(err, "more than 10 JSON values");
	CHECK_INT(load_max("{}", 1, err, sizeof(err)), 0);
	CHECK_INT(load_max("{}", 0, err, sizeof(err)), JSON_TOO_MANY_VALUES);
	/* Strings hide what looks like values; numbers beyond 64 bits still count once. */
	CHECK_INT(load_max("{\"k\":\"[1,2,{true}]\"}", 3, err, sizeof(err)), 0);
	CHECK_INT(load_max("{\"k\":123456789012345678901234567890}", 3, err, sizeof(err)), 0);
	CHECK_INT(load_max("{\"k\":123456789012345678901234567890}", 2, err, sizeof(err)),
		  JSON_TOO_MANY_VALUES);
}

/* {"x":[1,1,...]} with N numbers: N + 3 values; *LEN its length. */
static char *
numbers(size_t n, size_t *len)
{
	char *text = malloc(2 * n + 8);

	if (text == NULL)
		return NULL;
	*len = (size_t)sprintf(text, "{\"x\":[1");
	for (size_t i = 1; i < n; i++, *len += 2)
		memcpy(text + *len, ",1", 2);
	memcpy(text + *len, "]}", 3);
	*len += 2;
	return text;
}

/* A text of many small numbers is refused at the limit, with no tree built. */
static void
test_many_numbers_are_refused_before_parsing(void)
{
	size_t n = 300000, len;
	char *text = numbers(n, &len), err[128];
	json_t *root = NULL;
	bool big = false;

	CHECK(text != NULL && len == 2 * n + 7);
	CHECK_INT(json_load_object_max(text, len, 200000, &root, &big, err, sizeof(err)),
		  JSON_TOO_MANY_VALUES);
	CHECK(root == NULL);
	CHECK_STR(err, "more than 200000 JSON values");
	CHECK_INT(json_load_object_max(text, len, n + 3, &root, &big, err, sizeof(err)), 0);
	CHECK(json_array_size(json_object_get(root, "x")) == n);
	json_decref(root);
	free(text);
}

/* json_load_object() is the same with JSON_MAX_VALUES. */
static void
test_default_limit(void)
{
	size_t len;
	char *at = numbers(JSON_MAX_VALUES - 3, &len), *beyond, err[128];
	json_t *root = NULL;
	bool big = false;

	CHECK_INT(json_load_object(at, len, &root, &big, err, sizeof(err)), 0);
	json_decref(root);
	root = NULL;
	beyond = numbers(JSON_MAX_VALUES - 2, &len);
	CHECK_INT(json_load_object(beyond, len, &root, &big, err, sizeof(err)),
		  JSON_TOO_MANY_VALUES);
	CHECK(root == NULL);
	free(at);
	free(beyond);
}

CHECK_MAIN("json", CHECK_TEST(test_top_level_member), CHECK_TEST(test_nested_path),
	   CHECK_TEST(test_numbers_beyond_64_bits_stay_exact),
	   CHECK_TEST(test_strings_with_brackets_and_escapes),
	   CHECK_TEST(test_missing_or_not_an_object), CHECK_TEST(test_values_are_counted_exactly),
	   CHECK_TEST(test_many_numbers_are_refused_before_parsing), CHECK_TEST(test_default_limit))
