/*
 * test_json.c - json_member(): the bytes of a value, cut from the raw text
 * exactly as written (json_load_object itself is tested in test_message.c,
 * through the message parser, and by fuzz_message).
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

CHECK_MAIN("json", CHECK_TEST(test_top_level_member), CHECK_TEST(test_nested_path),
	   CHECK_TEST(test_numbers_beyond_64_bits_stay_exact),
	   CHECK_TEST(test_strings_with_brackets_and_escapes),
	   CHECK_TEST(test_missing_or_not_an_object))
