/*
 * config.h - receiver.toml as a struct.
 *
 * config_load() reads the file with the small strict TOML reader in toml.c,
 * checks every key against the schema below (unknown keys and wrong types are
 * errors), applies defaults, and resolves "env:NAME" / "file:PATH" string
 * values so that secrets never have to sit in the file itself.  Errors are
 * one line of the form "FILE:LINE: KEY: what is wrong".
 */
#ifndef RECEIVER_CONFIG_H
#define RECEIVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* What the HMAC covers (PROTOCOL.md section 2). */
enum signature_mode {
	SIGNATURE_SORTED_FIELDS, /* "sorted_fields": name+value of every other field, sorted */
	SIGNATURE_MESSAGE_ONLY,	 /* "message": the bare message value */
};

struct app_config {
	char *name;
	char *path; /* callback path, starts with '/' */
	char *app_key;
	char *app_secret;
	char **previous_secrets; /* still accepted during a rotation */
	size_t n_previous_secrets;
	enum signature_mode signature_mode;
};

struct server_config {
	char *listen;		  /* "host:port", default "127.0.0.1:8080" */
	size_t max_body_bytes;	  /* default 262144 */
	size_t max_pending;	  /* pushes waiting for a commit; default 4096 */
	int request_timeout_s;	  /* read/write timeout per connection; default 10 */
	int workers;		  /* processes sharing the port (SO_REUSEPORT); default 1 */
	char *admin_listen;	  /* "host:port" for /metrics, /healthz, /readyz; "" = off */
	char *tls_cert;		  /* PEM certificate chain: serve HTTPS; "" = plain HTTP */
	char *tls_key;		  /* PEM private key for tls_cert */
	int max_rejections_per_s; /* audit rows of rejected requests per second; 0 = all */
	int max_connections;	  /* open connections per worker; beyond, accepting waits */
	/* Open connections per client address; beyond, closed at once; 0 = no limit. */
	int max_connections_per_ip;
};

struct database_config {
	char *url;	       /* libpq conninfo or URI; $DATABASE_URL overrides */
	int max_batch;	       /* deliveries per transaction; 1 turns group commit off */
	int commit_timeout_ms; /* a batch not committed by then fails (503); default 5000 */
	int connect_timeout_ms;
};

struct upstream_config {
	char *base_url;
	int timeout_ms;
	int max_concurrency;
	int max_rps;
	char *ca_file; /* "" when unset */
};

/* [tokens]: the key members' OAuth tokens are sealed with (tokens.c). */
struct tokens_config {
	char *key; /* 64 hex digits (32 bytes); "" when not set */
};

struct reconcile_config {
	bool enabled;
	int max_attempts;
	int backoff_min_ms;
	int backoff_max_ms;
	int sweep_interval_s;
	int sweep_window_s;
};

/* [relay]: the outbox's senders (relay.c). */
struct relay_config {
	bool enabled; /* false: this receiver sends nothing (others on the database may) */
	int max_attempts;
	int backoff_min_ms;
	int backoff_max_ms;
};

/* [[subscriber]]: one service that gets the events, as Standard Webhooks. */
struct subscriber_config {
	char *name;   /* unique */
	char *url;    /* http(s)://host[:port]/path */
	char *secret; /* "whsec_" + base64 of 24..64 bytes */
	char **previous_secrets;
	size_t n_previous_secrets;
	char **events; /* event types to send; none: all */
	size_t n_events;
	char **apps; /* apps whose events to send; none: all */
	size_t n_apps;
	int timeout_ms;
	int max_concurrency; /* requests in flight to it, per receiver */
};

struct log_config {
	char *level; /* "debug", "info", "warn", "error" */
};

struct config {
	char *file;
	struct server_config server;
	struct database_config database;
	struct app_config *apps;
	size_t n_apps;
	struct upstream_config upstream;
	struct tokens_config tokens;
	struct reconcile_config reconcile;
	struct relay_config relay;
	struct subscriber_config *subscribers;
	size_t n_subscribers;
	struct log_config log;
};

/*
 * Load and validate FILE into *cfg.  On failure returns -1, leaves *cfg
 * empty (safe to config_free) and writes "FILE:LINE: KEY: reason" into err.
 */
int config_load(const char *file, struct config *cfg, char *err, size_t errlen);
void config_free(struct config *cfg);

/*
 * SIGHUP: take the keys config.c marks reloadable - each app's key, secrets
 * and signature mode, each subscriber's secrets, and the log level - from
 * FRESH (a newly loaded config), for apps and subscribers of the same name.
 * They are swapped: FRESH then holds the old values.  Returns how many apps
 * were updated; free FRESH afterwards.
 */
size_t config_adopt_secrets(struct config *cfg, struct config *fresh);

/* The app whose callback path is PATH, or NULL. */
const struct app_config *config_app_by_path(const struct config *cfg, const char *path);

/* The app named NAME, or NULL. */
const struct app_config *config_app_by_name(const struct config *cfg, const char *name);

/* The subscriber named NAME, or NULL. */
const struct subscriber_config *config_subscriber_by_name(const struct config *cfg,
							  const char *name);

/* The event types a subscriber's `events` may name. */
extern const char *const config_event_types[];

/*
 * Calls FN for every key the file may hold, in config.c's order: SECTION
 * is its table ("server", "app"), KEY its name there, RELOADABLE whether
 * config_adopt_secrets() takes it on SIGHUP.  For tests and tools that must
 * agree with the schema without repeating it.
 */
void config_each_key(void (*fn)(const char *section, const char *key, bool reloadable, void *arg),
		     void *arg);

#endif
