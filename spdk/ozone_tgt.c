/*   SPDX-License-Identifier: BSD-3-Clause
 *   Copyright (C) 2026 The bdev_ozone authors.
 *   All rights reserved.
 */

/*
 * ozone_tgt: SPDK's spdk_tgt with the ozone bdev module linked in, so no LD_PRELOAD is
 * needed. Same options as spdk_tgt (spdk_app_parse_args) plus -f <pidfile>; the RPC
 * server, the bdev, iSCSI, NVMe-oF, NBD, accel, sock, keyring and scheduler subsystems
 * come from the SPDK libraries it is linked with (see Makefile).
 * Owns: main() and the pid file.
 * Must never: hold any bdev_ozone logic (that is bdev_ozone.c, linked in unchanged), or
 * parse options spdk_app_parse_args already parses.
 */

#include "spdk/stdinc.h"

#include "spdk/env.h"
#include "spdk/event.h"

static const char *g_pid_path;

static void
ozone_tgt_usage(void)
{
	printf(" -f <file>                 pidfile save pid to file under given path\n");
}

static int
ozone_tgt_parse_arg(int ch, char *arg)
{
	switch (ch) {
	case 'f':
		g_pid_path = arg;
		return 0;
	default:
		return -EINVAL;
	}
}

static void
ozone_tgt_started(void *arg)
{
	FILE *f;

	if (g_pid_path == NULL) {
		return;
	}
	f = fopen(g_pid_path, "w");
	if (f == NULL) {
		fprintf(stderr, "cannot create pid file '%s': %s\n", g_pid_path, strerror(errno));
		spdk_app_stop(-errno);
		return;
	}
	fprintf(f, "%d\n", getpid());
	fclose(f);
}

int
main(int argc, char **argv)
{
	struct spdk_app_opts opts = {};
	int rc;

	spdk_app_opts_init(&opts, sizeof(opts));
	opts.name = "ozone_tgt";
	rc = spdk_app_parse_args(argc, argv, &opts, "f:", NULL, ozone_tgt_parse_arg,
				 ozone_tgt_usage);
	if (rc != SPDK_APP_PARSE_ARGS_SUCCESS) {
		return rc;
	}
	rc = spdk_app_start(&opts, ozone_tgt_started, NULL);
	spdk_app_fini();
	return rc;
}
