/*
 * server.h - `receiver serve`: one event loop with its HTTP server and its
 * database connections, until SIGTERM or SIGINT.  SIGHUP re-reads the
 * configuration file and takes the apps' secrets and the log level from it
 * (with several workers, in the supervisor too, for the workers it restarts).
 */
#ifndef RECEIVER_SERVER_H
#define RECEIVER_SERVER_H

#include "config.h"

/* Serve until told to stop.  Returns the process exit status. */
int server_run(struct config *cfg);

#endif
