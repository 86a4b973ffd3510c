/*
 * server.c - the worker: one event loop, one context struct (see server.h).
 *
 * Everything a worker owns hangs off struct worker; nothing else in the
 * process is mutable.  Shutdown, on SIGTERM or SIGINT, goes: close the
 * listening socket, let the store commit what is queued (new pushes are
 * answered 503), then give the loop a moment to write the last replies
 * before the connections are closed.  A deadline bounds the whole thing.
 *
 * SIGHUP arrives blocked (main.c): a worker unblocks it once its loop has
 * the event for it, and blocks it again before that event goes, so a
 * reload never meets the default action (terminate).  The supervisor
 * reloads too before it passes the signal on: a worker it restarts later
 * starts from the secrets in force, not from those read at start.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "http.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "reconcile.h"
#include "relay.h"
#include "server.h"
#include "store.h"
#include "util.h"

/* Time for the last replies to leave the socket buffers. */
#define FLUSH_GRACE_MS 200

struct worker {
	struct config *cfg;
	struct event_base *base;
	struct store *store;
	struct ingest *ingest;
	struct http *http;
	struct reconciler *reconciler; /* NULL when [reconcile] enabled = false */
	struct relay *relay;	       /* NULL without [[subscriber]] or [relay] enabled */
	struct event *ev_sigterm;
	struct event *ev_sigint;
	struct event *ev_sighup;
	struct event *ev_deadline;
	bool stopping;
};

static int supervise(struct config *cfg);
static pid_t spawn(struct config *cfg, int index, const sigset_t *mask);
static void stop_all(pid_t *pids, int n, bool *stopping);
static void seed_jitter(void);
static int worker_run(struct config *cfg, int index);
static int worker_init(struct worker *w, struct config *cfg, bool reconciles);
static int watch_signals(struct worker *w);
static void reload(struct config *cfg);
static void worker_free(struct worker *w);
static void on_signal(evutil_socket_t sig, short what, void *arg);
static void on_reload(evutil_socket_t sig, short what, void *arg);
static void on_drained(void *arg);
static void on_deadline(evutil_socket_t fd, short what, void *arg);
static void on_push(void *arg, struct evhttp_request *req, const struct app_config *app,
		    const char *request_id);
static void on_refused(void *arg, const char *request_id);
static bool is_ready(void *arg, const char **why);
static void render_metrics(void *arg, struct evbuffer *out);

int
server_run(struct config *cfg)
{
	signal(SIGPIPE, SIG_IGN);
	if (cfg->server.workers <= 1)
		return worker_run(cfg, 0);
	return supervise(cfg);
}

/*
 * Several workers: this process only starts them, passes signals on, and
 * restarts one that dies.  Each worker binds the port itself with
 * SO_REUSEPORT and has its own loop and database connections; only worker
 * 0 reconciles, so the trade API's limits hold per receiver, not per
 * worker.  Signals are taken synchronously (sigwait): nothing else runs.
 */
static int
supervise(struct config *cfg)
{
	pid_t pids[64] = {0};
	int64_t started[64] = {0}; /* monotonic, microseconds */
	sigset_t set, old;
	int n = cfg->server.workers, alive = 0, rc = 0, sig;
	bool stopping = false;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	/* A worker is born with SIGHUP blocked, whatever main() did. */
	sigaddset(&old, SIGHUP);
	for (int i = 0; i < n; i++) {
		pids[i] = spawn(cfg, i, &old);
		started[i] = util_mono_us();
		alive += pids[i] > 0;
	}
	log_event(LOG_INFO, "supervising", "%d workers on %s", alive, cfg->server.listen);
	while (alive > 0 && sigwait(&set, &sig) == 0) {
		if (sig == SIGCHLD) {
			pid_t pid;
			int status;

			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				int i = 0;

				while (i < n && pids[i] != pid)
					i++;
				if (i == n)
					continue;
				alive--;
				pids[i] = 0;
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
					rc = 1;
				if (stopping)
					continue;
				log_event(
				    LOG_ERROR, "worker_died", "worker %d (pid %d) %s %d", i,
				    (int)pid, WIFEXITED(status) ? "exited" : "killed by signal",
				    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
				/* One that cannot even start would only die again. */
				if (util_mono_us() - started[i] < 2000000) {
					stop_all(pids, n, &stopping);
					continue;
				}
				pids[i] = spawn(cfg, i, &old);
				started[i] = util_mono_us();
				alive += pids[i] > 0;
				rc = 0;
			}
		} else if (sig == SIGHUP) {
			reload(cfg);
			for (int i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGHUP);
		} else {
			stop_all(pids, n, &stopping);
		}
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static pid_t
spawn(struct config *cfg, int index, const sigset_t *mask)
{
	pid_t pid = fork();

	if (pid == 0) {
		sigprocmask(SIG_SETMASK, mask, NULL);
		_exit(worker_run(cfg, index));
	}
	if (pid < 0)
		log_event(LOG_ERROR, "fork_failed", "worker %d: %s", index, strerror(errno));
	return pid;
}

static void
stop_all(pid_t *pids, int n, bool *stopping)
{
	*stopping = true;
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
}

/*
 * Jitter (reconnects, backoffs) must differ between workers and hosts.
 * Not gethostid(): without /etc/hostid, glibc looks the host name up.
 */
static void
seed_jitter(void)
{
	char host[256] = "";
	unsigned seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);

	gethostname(host, sizeof(host) - 1);
	for (const char *p = host; *p != '\0'; p++)
		seed = seed * 31 + (unsigned char)*p;
	srandom(seed);
}

/* One worker: its own event loop, listener and database connections. */
static int
worker_run(struct config *cfg, int index)
{
	struct worker w;
	char err[256];
	int rc = 1;

	seed_jitter();
	if (worker_init(&w, cfg, index == 0) < 0)
		goto out;
	if (http_listen(w.http, err, sizeof(err)) < 0 ||
	    (index == 0 && http_listen_admin(w.http, err, sizeof(err)) < 0)) {
		log_event(LOG_ERROR, "listen_failed", "%s", err);
		goto out;
	}
	store_start(w.store);
	if (w.reconciler != NULL)
		reconciler_start(w.reconciler);
	if (w.relay != NULL)
		relay_start(w.relay);
	log_event(LOG_INFO, "serving",
		  "worker %d listening on %s, %zu app(s), schema version %d%s%s", index,
		  cfg->server.listen, cfg->n_apps, migrate_latest_version(),
		  w.reconciler != NULL ? ", reconciling" : "", w.relay != NULL ? ", relaying" : "");
	event_base_dispatch(w.base);
	log_event(LOG_INFO, "stopped", "worker %d: shutdown complete", index);
	rc = 0;
out:
	worker_free(&w);
	return rc;
}

static int
worker_init(struct worker *w, struct config *cfg, bool reconciles)
{
	const struct http_handlers handlers = {.push = on_push,
					       .refused = on_refused,
					       .push_arg = w,
					       .ready = is_ready,
					       .metrics = render_metrics,
					       .status_arg = w};

	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	w->base = event_base_new();
	if (w->base == NULL)
		return -1;
	w->store =
	    store_new(w->base, &cfg->database, cfg->server.max_pending, migrate_latest_version());
	if (w->store == NULL)
		return -1;
	w->ingest = ingest_new(cfg, w->store);
	if (w->ingest == NULL)
		return -1;
	w->http = http_new(w->base, cfg, &handlers);
	if (cfg->reconcile.enabled && reconciles) {
		char err[256];

		w->reconciler =
		    reconciler_new(w->base, cfg, migrate_latest_version(), err, sizeof(err));
		if (w->reconciler == NULL) {
			log_event(LOG_ERROR, "reconcile_failed", "%s", err);
			return -1;
		}
	}
	/* Like reconciling, only worker 0 relays: a subscriber's limits hold per receiver. */
	if (cfg->relay.enabled && cfg->n_subscribers > 0 && reconciles) {
		char err[256];

		w->relay = relay_new(w->base, cfg, migrate_latest_version(), err, sizeof(err));
		if (w->relay == NULL) {
			log_event(LOG_ERROR, "relay_failed", "%s", err);
			return -1;
		}
	}
	if (w->http == NULL)
		return -1;
	return watch_signals(w);
}

/*
 * libevent 2.1 catches a signal with sigaction() and a socket pair, not
 * signalfd: a SIGHUP pending while blocked is delivered to its handler at
 * the unblock, and the loop reloads on its first turn.
 */
static int
watch_signals(struct worker *w)
{
	w->ev_sigterm = evsignal_new(w->base, SIGTERM, on_signal, w);
	w->ev_sigint = evsignal_new(w->base, SIGINT, on_signal, w);
	w->ev_sighup = evsignal_new(w->base, SIGHUP, on_reload, w);
	w->ev_deadline = evtimer_new(w->base, on_deadline, w);
	if (w->ev_sigterm == NULL || w->ev_sigint == NULL || w->ev_sighup == NULL ||
	    w->ev_deadline == NULL || evsignal_add(w->ev_sigterm, NULL) < 0 ||
	    evsignal_add(w->ev_sigint, NULL) < 0 || evsignal_add(w->ev_sighup, NULL) < 0)
		return -1;
	util_block_sighup(false);
	return 0;
}

/*
 * The store goes first: freeing it answers any push still waiting (through
 * ingest), which must happen while the HTTP connections still exist.
 */
static void
worker_free(struct worker *w)
{
	if (w->reconciler != NULL)
		reconciler_free(w->reconciler);
	relay_free(w->relay);
	if (w->store != NULL)
		store_free(w->store);
	if (w->http != NULL)
		http_free(w->http);
	ingest_free(w->ingest);
	if (w->ev_sigterm != NULL)
		event_free(w->ev_sigterm);
	if (w->ev_sigint != NULL)
		event_free(w->ev_sigint);
	/* Freeing the event restores the default action. */
	util_block_sighup(true);
	if (w->ev_sighup != NULL)
		event_free(w->ev_sighup);
	if (w->ev_deadline != NULL)
		event_free(w->ev_deadline);
	if (w->base != NULL)
		event_base_free(w->base);
	memset(w, 0, sizeof(*w));
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	int ms = w->cfg->database.commit_timeout_ms + 1000;
	struct timeval deadline = util_tv_ms(ms);

	(void)what;
	if (w->stopping)
		return;
	w->stopping = true;
	log_event(LOG_INFO, "stopping", "signal %d: finishing the pushes in flight", (int)sig);
	http_stop_accepting(w->http);
	if (w->reconciler != NULL)
		reconciler_stop(w->reconciler);
	if (w->relay != NULL)
		relay_stop(w->relay);
	evtimer_add(w->ev_deadline, &deadline);
	store_drain(w->store, on_drained, w);
}

/*
 * Rotation without downtime: only secrets and the log level change, in
 * place, between two events; connections and pushes in flight carry on.
 */
static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	(void)sig;
	(void)what;
	reload(w->cfg);
}

/* Adopt the file's secrets and log level.  A file that no longer loads changes nothing. */
static void
reload(struct config *cfg)
{
	struct config fresh;
	enum log_level level;
	char err[512];
	size_t n;

	if (config_load(cfg->file, &fresh, err, sizeof(err)) < 0) {
		log_event(LOG_ERROR, "reload_failed", "%s; keeping the running configuration", err);
		return;
	}
	n = config_adopt_secrets(cfg, &fresh);
	config_free(&fresh);
	if (log_parse_level(cfg->log.level, &level) == 0)
		log_set_level(level);
	log_event(LOG_INFO, "reloaded",
		  "secrets of %zu app(s) and the log level reloaded from %s (other changes "
		  "need a restart)",
		  n, cfg->file);
}

static void
on_drained(void *arg)
{
	struct worker *w = arg;
	struct timeval grace = util_tv_ms(FLUSH_GRACE_MS);

	event_base_loopexit(w->base, &grace);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	log_event(LOG_WARN, "stop_deadline", "pushes still waiting at the deadline get 503");
	event_base_loopbreak(w->base);
}

/* http.c's handlers: pushes go to ingest, health and metrics stay here. */
static void
on_push(void *arg, struct evhttp_request *req, const struct app_config *app, const char *request_id)
{
	struct worker *w = arg;

	ingest_request(w->ingest, req, app, request_id);
}

static void
on_refused(void *arg, const char *request_id)
{
	struct worker *w = arg;

	ingest_refused(w->ingest, request_id);
}

static bool
is_ready(void *arg, const char **why)
{
	struct worker *w = arg;

	*why = store_state_text(w->store);
	return store_ready(w->store);
}

static void
render_metrics(void *arg, struct evbuffer *out)
{
	struct worker *w = arg;

	metrics_build_info(out, migrate_latest_version());
	ingest_metrics(w->ingest, out);
	http_metrics(w->http, out);
	store_metrics(w->store, out);
	if (w->reconciler != NULL)
		reconciler_metrics(w->reconciler, out);
	if (w->relay != NULL)
		relay_metrics(w->relay, out);
}
