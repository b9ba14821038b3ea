/* internal.h: helpers shared by spawn.c and mounts.c; nothing here is exported to Python. */
#ifndef SBX_INTERNAL_H
#define SBX_INTERNAL_H

#include <stddef.h>

#include "sbx.h"

/* Fill *e and return -1. Async-signal-safe: no allocation, no stdio. */
int sbx_fail(struct sbx_err *e, int stage, int err, const char *op, const char *path);

/* Send one trace record over the spawn channel when this stage traces (req->trace); else nothing.
 * Async-signal-safe. */
void sbx_report(int stage, int step, long long a, long long b, const char *text);

/* Bounded string copy that always terminates; returns -1 when `src` did not fit. */
int sbx_copy(char *dst, size_t size, const char *src);

/* Run the mount plan (SBX_OP_*) and return the new root's fd (O_PATH), or -1 with *e filled. */
int sbx_run_mount_plan(const struct sbx_spawn_req *req, int pod_mount_fd, struct sbx_err *e);

/* pivot_root into `rootfd` and detach the old root. */
int sbx_pivot(int rootfd, int readonly, struct sbx_err *e);

/* Drop every capability not in `keep` (bit n = capability n) from the bounding set. */
int sbx_drop_bounding(unsigned long long keep, struct sbx_err *e);

/* Permitted and effective become `keep`; inheritable and ambient are cleared. */
int sbx_apply_caps(unsigned long long keep, struct sbx_err *e);

/* Stage 1 in the calling process: what a forked stage 1 runs (spawn.c), for the shim's
 * `--stage1` mode (sbx_spawn_start_exec). Reports over `chan` and exits. */
__attribute__((noreturn)) void sbx_stage1(const struct sbx_spawn_req *req, int chan);

/* mkdir -p inside the current root, then chdir. */
int sbx_enter_cwd(const char *cwd, struct sbx_err *e);

#endif
