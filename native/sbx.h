/* sbx.h: the C API of sandbox's native core, called from Python through cffi.
 *
 * Everything between fork and execve lives in C: the runtime may have threads, and after fork()
 * only async-signal-safe calls are allowed until execve (the same reason runc has nsexec).
 * native/build_ffi.py feeds the part between the CDEF markers to cffi's cdef(), so this header is
 * the one source of truth for both sides.
 */
#ifndef SBX_H
#define SBX_H

/* CDEF BEGIN */
enum sbx_stage {
        SBX_STAGE_PARENT = 0, /* in the runtime, before or after the fork */
        SBX_STAGE_NAMESPACES = 1, /* stage 1: setns, unshare, hostname, loopback, clone */
        SBX_STAGE_SETUP = 2, /* stage 2: mounts, pivot_root, credentials, cwd */
        SBX_STAGE_EXEC = 3, /* stage 2: execve itself */
};

enum sbx_op_kind {
        SBX_OP_ROOT = 1, /* mount source/fstype/data at host path `target`; it becomes the new root */
        SBX_OP_MOUNT = 2, /* mount a filesystem at `target` inside the new root (a real directory) */
        SBX_OP_BIND = 3, /* bind host path `source` at `target` inside the new root */
        SBX_OP_SYMLINK = 4, /* create symlink `target` -> `source` inside the new root */
        SBX_OP_MKDIR = 5, /* create directory `target` inside the new root (mode in `flags`) */
        SBX_OP_POD_MOUNT = 6, /* attach the pod's shared mount (req->pod_mount) at `target` */
        SBX_OP_MASK = 7, /* mask `target` (skipped if missing): a verified /dev/null over a file,
                            an empty read-only tmpfs over a directory */
        SBX_OP_READONLY = 8, /* bind `target` on itself (skipped if missing), read-only, keeping
                                its nosuid/nodev/noexec */
        SBX_OP_BIND_BENEATH = 9, /* bind the path `data` resolved beneath the host directory
                                    `source` (never out of it; a missing one is created as a
                                    directory with the mode of `source`) at `target`: the opened
                                    fd is bound, not a path resolved again (a volume's subPath) */
        SBX_OP_CHDIR = 10, /* chdir to the host directory `target` (allowed before the root): the
                              overlay mounts after it name their lowerdirs relative to it */
};

/* One failure, sent as one fixed-size record over the spawn channel (< PIPE_BUF: atomic). */
struct sbx_err {
        int stage;
        int err; /* errno */
        char op[48]; /* "mount proc", "execve", "pivot_root" ... */
        char path[200]; /* the path (or name) the operation was applied to */
};

/* One step a spawn stage took, sent over the spawn channel as it happens, only when the request's
 * `trace` is set (`sandbox run --trace`); the runtime formats it with the request it built, so
 * a record carries only what the request does not know: results (pids, inodes, counts). */
enum sbx_trace_step {
        SBX_TRACE_SETNS = 1, /* a: one CLONE_NEW* joined through join_pidfd, b: its inode */
        SBX_TRACE_UNSHARE = 2, /* a: the CLONE_NEW* set unshared */
        SBX_TRACE_NS = 3, /* a: one CLONE_NEW* of the unshare before, b: the new namespace's inode */
        SBX_TRACE_HOSTNAME = 4, /* text: the name set */
        SBX_TRACE_LOOPBACK = 5, /* `lo` is up */
        SBX_TRACE_SYSCTL = 6, /* a: index of the pair in req->sysctls */
        SBX_TRACE_CLONE = 7, /* a: clone flags, b: stage 2's pid as the runtime sees it */
        SBX_TRACE_SETSID = 8, /* a: the new session's id */
        SBX_TRACE_OOM_SCORE = 9, /* a: the value, b: 0 written, else the errno it failed with */
        SBX_TRACE_MOUNT = 10, /* a: index in req->ops, b: 1 when skipped (a path the root lacks) */
        SBX_TRACE_PIVOT = 11, /* pivot_root done and the old root detached; a: the root is read-only */
        SBX_TRACE_CWD = 12, /* text: the working directory entered */
        SBX_TRACE_BOUNDING = 13, /* a: capabilities dropped from the bounding set */
        SBX_TRACE_IDS = 14, /* a: uid, b: gid (-1: unchanged) */
        SBX_TRACE_CAPSET = 15, /* a: the kept mask (permitted = effective) */
        SBX_TRACE_NNP = 16, /* no_new_privs set */
        SBX_TRACE_SECCOMP = 17, /* a: the filter's BPF instructions */
        SBX_TRACE_EXEC = 18, /* text: the path about to be executed; a: 1 for execveat(exec_fd) */
        SBX_TRACE_CGROUP = 19, /* stage 2 moved itself into req->join_cgroups[a] */
};

struct sbx_trace {
        int stage;
        int step; /* enum sbx_trace_step */
        long long a;
        long long b;
        char text[200];
};

struct sbx_mount_op {
        int kind;
        const char *source;
        const char *target;
        const char *fstype;
        unsigned long flags; /* MS_* for mounts; a BIND's RDONLY/NOSUID/NODEV/NOEXEC are set on
                               its clone before it is attached, and MS_SLAVE or MS_SHARED its
                               propagation (MS_PRIVATE otherwise); mode for MKDIR */
        const char *data;
};

struct sbx_spawn_req {
        int join_pidfd; /* pidfd whose namespaces to join, or -1 */
        int join_ns; /* CLONE_NEW* set to setns() through join_pidfd */
        int new_ns; /* CLONE_NEW* set to unshare(); CLONE_NEWCGROUP by stage 2, after "go" */
        const char *hostname; /* sethostname() after a new UTS namespace; NULL leaves it */
        int loopback_up; /* bring `lo` up in a new network namespace */
        const char *const *sysctls; /* NULL-terminated pairs (path under /proc/sys, value), written
                                       by stage 1 after unshare(); NULL: none */
        const struct sbx_mount_op *ops;
        int n_ops;
        int pivot; /* pivot_root into the SBX_OP_ROOT target and detach the old root */
        int readonly_root; /* remount the new root read-only after pivot_root */
        int exec_fd; /* >= 0: execveat() this fd (pause, run from an empty root); else argv[0] */
        const char *const *argv; /* NULL-terminated */
        const char *const *envp; /* NULL-terminated; its PATH is searched for argv[0] */
        const char *cwd; /* created if missing (as runc does), NULL: "/" after a pivot */
        int stdio[3]; /* fds for 0, 1, 2; -1 inherits */
        int set_oom_score_adj;
        int oom_score_adj;
        int uid; /* -1 keeps root */
        int gid; /* -1 keeps root's; otherwise the supplementary groups become `groups` */
        const unsigned int *groups;
        int n_groups;
        int no_new_privs;
        int set_caps; /* keep only `caps` (bit n = capability n) in all capability sets */
        unsigned long long caps;
        const void *seccomp_filter; /* struct sock_filter[seccomp_len], loaded last; NULL: none */
        int seccomp_len;
        int new_session; /* setsid(): detach from the runtime's terminal and process group */
        int pdeathsig; /* signal when the spawning runtime thread dies; 0: none */
        const char *pod_mount; /* path in join_pidfd's mount namespace to clone for
                                  SBX_OP_POD_MOUNT (the pod's /dev/shm); NULL: none */
        const char *stage_name; /* PR_SET_NAME prefix, e.g. "sbx" -> "sbx:stage1" */
        int cgroup_fd; /* a cgroup2 directory stage 2 is born in (clone3 CLONE_INTO_CGROUP), or -1 */
        int cgroup_root_fd; /* a directory the runtime opened (O_PATH) above every join_cgroups
                               entry, or -1 */
        const char *const *join_cgroups; /* NULL-terminated cgroup v1 directories, relative to
                                            cgroup_root_fd, that stage 2 moves itself into right
                                            after "go" (0 into each one's `tasks`); NULL: none */
        int trace; /* the stages send a struct sbx_trace per step (res->on_trace receives them) */
};

struct sbx_spawn_res {
        int pid; /* stage 2: the container's main process, a direct child of the caller */
        int chan; /* the parent's end of the spawn channel, closed by sbx_spawn_finish() */
        int released; /* "go" was sent to stage 2 (sbx_spawn_finish() may be called again) */
        struct sbx_err err;
        /* Called in the runtime for each trace record as it is read (NULL: records are dropped);
         * set by the caller before sbx_spawn_start() or sbx_spawn_finish(), which keep it. */
        void (*on_trace)(void *ctx, const struct sbx_trace *t);
        void *trace_ctx;
};

/* How long the runtime waits for a spawn stage before it kills it (stage 1 always; stage 2 by
 * default, the caller passes its own timeout to sbx_spawn_finish()). */
enum { SBX_SPAWN_TIMEOUT_MS = 10000 };

/* Fork stage 1, which joins/creates namespaces and clones stage 2 as the caller's own child.
 * Returns 0 with res->pid set (stage 2 then waits for sbx_spawn_finish() before any set-up, so
 * the caller can do its parent-side steps, e.g. cgroup placement), or -1 with res->err filled
 * and nothing left running. */
int sbx_spawn_start(const struct sbx_spawn_req *req, struct sbx_spawn_res *res);

/* The same with stage 1 a fresh process: `helper` (the shim binary, run as `--stage1`) started by
 * posix_spawn, so the caller's memory is neither copied nor marked copy-on-write (each page the
 * runtime wrote after a fork faulted: ~1,500 faults, ~2 ms per pod cycle here), and stage 2 is a
 * clone of the small helper, holding nothing of the runtime's memory. `memfd` holds the request
 * packed as the shim protocol packs it (docs/shim-protocol.md), `fds` its fds in their index order
 * (at most SBX_STAGE1_MAX_FDS - 1). Same results as sbx_spawn_start. */
enum { SBX_STAGE1_MAX_FDS = 8, SBX_STAGE1_CHAN_FD = 3 };
int sbx_spawn_start_exec(const char *helper, int memfd, const int *fds, int n_fds, struct sbx_spawn_res *res);

/* Release stage 2 and wait up to `timeout_ms` until it has called execve (0) or reported a
 * failure (-1, res->err filled; the caller still reaps res->pid). Past the deadline stage 2 is
 * killed (SIGKILL) and the error is ETIMEDOUT. A signal ends the wait early with EINTR (stage
 * SBX_STAGE_PARENT) and res->chan still open: call again to wait on. Otherwise closes res->chan. */
int sbx_spawn_finish(struct sbx_spawn_res *res, int timeout_ms);

/* Create a socket (SOCK_CLOEXEC is added to `type`) inside the network namespace of the process
 * `pidfd` names, without the caller leaving its own: a short CLONE_VM|CLONE_VFORK|CLONE_FILES
 * helper joins the namespace and creates it in the shared fd table (netns.c). The socket keeps
 * that namespace, so a later connect() happens inside the pod. Returns the fd, or -1 with *err
 * filled (stage SBX_STAGE_PARENT). */
int sbx_socket_in_netns(int pidfd, int domain, int type, int protocol, struct sbx_err *err);

/* The runtime's own tmpfs in its mount namespace at the directory `target` (opened O_NOFOLLOW),
 * and its unmount (MNT_DETACH, not following a symlink). 0, or -1 with *err filled (mounts.c). */
int sbx_mount_tmpfs(const char *target, unsigned long flags, const char *data, struct sbx_err *err);
int sbx_umount(const char *target, struct sbx_err *err);

/* renameat2(RENAME_EXCHANGE): `from` and `to` swap names atomically, neither inode is freed
 * (state/store.py: on ext4 mounted with `discard` and no journal, freeing the replaced file's
 * block is a synchronous discard). 0, or -1 with *err filled (mounts.c). */
int sbx_rename_exchange(const char *from, const char *to, struct sbx_err *err);

/* flock(2) of `fd` (`op`: LOCK_SH, LOCK_EX, LOCK_UN, | LOCK_NB), and the inode flags `flags`
 * (FS_IOC_GETFLAGS/SETFLAGS: FS_TOPDIR_FL, ...) added to the open file `fd` where missing: the
 * runtime's pod lock and topdir.py's marks without Python's fcntl module, one shared library
 * less for every `sandbox run` to load. 0, or -1 with *err filled (mounts.c). */
int sbx_flock(int fd, int op, struct sbx_err *err);
int sbx_add_inode_flags(int fd, int flags, struct sbx_err *err);

/* One device rule, as runc's devices.Rule / a devices.allow line (devices.c). */
struct sbx_device_rule {
        char type; /* 'a' (any), 'b' or 'c' */
        int major; /* -1: any */
        int minor; /* -1: any */
        char access[4]; /* NUL-terminated subset of "rwm", not empty */
        int allow; /* 1: allow, 0: deny */
};

enum { SBX_DEVICE_RULES_MAX = 128 };

/* Load a BPF_PROG_TYPE_CGROUP_DEVICE program built from `rules` (the last matching rule decides,
 * no match denies) and attach it to the cgroup2 directory `cgroup_fd` (BPF_CGROUP_DEVICE,
 * BPF_F_ALLOW_MULTI). The kernel keeps it attached until the cgroup is removed. 0, or -1 with
 * *err filled (stage SBX_STAGE_PARENT). */
int sbx_device_filter_attach(int cgroup_fd, const struct sbx_device_rule *rules, int n, struct sbx_err *err);

/* ---- extract.c: one OCI layer unpacked from buffers as they arrive (images/untar.py) ---- */
enum { SBX_LAYER_GZIP = 1, /* the buffers are a gzip stream (members back to back) */
       SBX_LAYER_DEVICES = 2, /* character and block devices allowed */
       SBX_LAYER_ZLIB = 4 /* inflate with zlib even where isa-l's inflate was found (tests run both) */ };

struct sbx_layer; /* the unpacking state: opaque */

/* What a layer gave, or why it failed: the message extract.py's LayerError carries is
 * `layer entry "<entry>": <detail>` (has_entry) or `layer: <detail>`, each \x01 in `detail`
 * standing for `subject` (a name from the archive), both shown as the Python side shows names. */
struct sbx_layer_res {
        long long files; /* entries written: files, directories (implicit ones too), links, nodes */
        long long bytes; /* regular file content */
        char diff_id[72]; /* "sha256:<hex>" of the uncompressed stream, after sbx_layer_finish() */
        int has_entry;
        int entry_len;
        char entry[1024]; /* the failing entry's name, its first bytes */
        int subject_len;
        char subject[1024];
        char detail[512];
};

/* 1 when zlib and libcrypto could be loaded (dlopen, once): else extract.py unpacks. */
int sbx_layer_supported(void);
/* 1 when gzip layers inflate through isa-l (built against <isa-l/igzip_lib.h> and libisal.so.2
 * loaded), 0 when through zlib. */
int sbx_layer_isal(void);
/* Start a layer below the directory `root_fd` (empty; kept open by the caller until
 * sbx_layer_free()). NULL with res->detail filled when zlib or libcrypto cannot be loaded. */
struct sbx_layer *sbx_layer_new(int root_fd, int flags, struct sbx_layer_res *res);
/* The next `len` bytes of the blob: 0, or -1 with *res filled (the layer is then failed). */
int sbx_layer_feed(struct sbx_layer *layer, const unsigned char *data, size_t len, struct sbx_layer_res *res);
/* The blob's end: directory modes and times set, res->diff_id, files and bytes filled; 0, or -1
 * when the stream or the archive was cut short (or anything failed). */
int sbx_layer_finish(struct sbx_layer *layer, struct sbx_layer_res *res);
/* Close and free everything (also after a failure). */
void sbx_layer_free(struct sbx_layer *layer);
/* CDEF END */

#endif
