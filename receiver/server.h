/*
 * server.h - `receiver serve`: one event loop with its HTTP server and its
 * database connection, until SIGTERM or SIGINT.
 */
#ifndef RECEIVER_SERVER_H
#define RECEIVER_SERVER_H

#include "config.h"

/* Serve until told to stop.  Returns the process exit status. */
int server_run(const struct config *cfg);

#endif
