/* shim_proto.h: the wire protocol between sandbox/_bin/shim (native/shim.c) and its clients
 * (sandbox/process/shimproto.py mirrors every struct and constant here; docs/shim-protocol.md
 * explains the exchanges). One message per SOCK_SEQPACKET packet: a struct shim_hdr, then the
 * body its type names. Every integer is in the host's byte order (both ends run on one host);
 * every struct is laid out without implicit padding (the explicit `pad` fields), so Python's
 * struct module with "=" reads the same bytes.
 */
#ifndef SHIM_PROTO_H
#define SHIM_PROTO_H

#include <stdint.h>

#include "sbx.h"

/* 2: SBX2 requests (stage 2 joins its v1 cgroups itself). A shim accepts a HELLO of any version
 * from 1 to its own and answers with its own; a client sends the oldest it speaks (1) and uses
 * what the answer allows, so a new runtime still drives the shims of pods an older one started. */
#define SHIM_PROTO_VERSION 2
#define SHIM_ID_MAX 128 /* a child's id, NUL-padded: at most 127 bytes */
#define SHIM_MSG_MAX 65536 /* the largest packet either side sends */
#define SHIM_OUTPUT_MAX 16384 /* the most bytes of output one OUTPUT event carries */
#define SHIM_MAX_FDS 8 /* the most fds one SPAWN carries (the request memfd first) */
#define SHIM_REQ_MAGIC 0x31584253u /* "SBX1": the packed spawn request's first word */
#define SHIM_REQ_MAGIC2 0x32584253u /* "SBX2": a struct shim_req_ext follows the header */
#define SHIM_REQ_MAX (64u << 20) /* the largest packed spawn request accepted */

enum shim_msg_type {
        /* client -> shim; each is answered by exactly one reply (LIST: entries, then LIST_END) */
        SHIM_HELLO = 1, /* shim_hello; must come first */
        SHIM_SPAWN = 2, /* shim_spawn + log path bytes; fds: the request memfd, then its fds */
        SHIM_ACK = 3, /* shim_pid: forget this exit */
        SHIM_LIST = 4, /* no body */
        SHIM_WATCH = 5, /* shim_watch: OUTPUT events on or off */
        SHIM_REOPEN = 6, /* shim_id: reopen that child's log file */
        SHIM_SHUTDOWN = 7, /* no body: exit once no child is left */
        /* shim -> client replies */
        SHIM_R_HELLO = 64, /* shim_hello_reply */
        SHIM_R_OK = 65, /* no body */
        SHIM_R_ERROR = 66, /* struct sbx_err */
        SHIM_R_SPAWNED = 67, /* shim_spawned; fds: the spawn channel, a pidfd of stage 2 */
        SHIM_R_LIST_ENTRY = 68, /* shim_child; fds: a pidfd when the child still runs */
        SHIM_R_LIST_END = 69, /* shim_count */
        SHIM_R_TRACE = 70, /* struct sbx_trace: a step of stage 1 of the SPAWN in progress (before its reply) */
        /* shim -> every client that said HELLO, at any time */
        SHIM_E_EXIT = 128, /* shim_child */
        SHIM_E_OUTPUT = 129, /* shim_output + bytes (watching clients only) */
        SHIM_E_DROPPED = 130, /* shim_count: OUTPUT events this client missed (it did not read) */
};

struct shim_hdr {
        uint32_t type;
        uint32_t len; /* bytes after the header */
};

struct shim_hello {
        uint32_t version; /* 1..SHIM_PROTO_VERSION; another one is refused (ERROR, disconnect) */
        uint32_t pad;
};

struct shim_hello_reply {
        uint32_t version;
        int32_t pid; /* the shim's own pid */
};

struct shim_spawn {
        char id[SHIM_ID_MAX];
        uint32_t log_len; /* length of the log path that follows (no NUL); 0: no log, the
                             request's own stdio is used as given */
        uint32_t pad;
};

struct shim_spawned {
        char id[SHIM_ID_MAX];
        int32_t pid;
        uint32_t pad;
};

struct shim_pid {
        int32_t pid;
        uint32_t pad;
};

struct shim_id {
        char id[SHIM_ID_MAX];
};

struct shim_watch {
        uint32_t on;
        uint32_t pad;
};

enum shim_child_state { SHIM_RUNNING = 1, SHIM_EXITED = 2 };

struct shim_child {
        char id[SHIM_ID_MAX];
        int32_t pid;
        uint32_t state; /* shim_child_state */
        int32_t status; /* the raw wait status (WIFEXITED, WEXITSTATUS, ...) once exited */
        uint32_t pad;
        int64_t exit_ns; /* CLOCK_REALTIME of the reap, in ns; 0 while running */
};

enum shim_stream { SHIM_STDOUT = 1, SHIM_STDERR = 2 };

struct shim_output {
        char id[SHIM_ID_MAX];
        uint32_t stream; /* shim_stream */
        uint32_t len; /* bytes that follow: exactly what the child wrote, as read */
};

struct shim_count {
        uint64_t count;
};

/* The packed spawn request (the memfd's content): this header, then the arrays and strings it
 * points at by offset from the start of the buffer (0: none/NULL). The buffer's last byte is NUL,
 * so every string offset inside it is terminated. fd fields are indexes into the SPAWN's fds
 * (0 is the memfd itself, so a request fd is >= 1), or -1. */
struct shim_req {
        uint32_t magic; /* SHIM_REQ_MAGIC */
        uint32_t size; /* the whole buffer */
        int32_t join_fd, join_ns, new_ns, loopback_up, pivot, readonly_root, exec_fd;
        int32_t stdio[3];
        int32_t set_oom_score_adj, oom_score_adj, uid, gid, no_new_privs, set_caps;
        uint64_t caps;
        int32_t new_session, pdeathsig, cgroup_fd;
        uint32_t hostname, pod_mount, stage_name, cwd; /* string offsets */
        uint32_t argv, n_argv; /* uint32 string offsets (4-aligned) */
        uint32_t envp, n_envp;
        uint32_t sysctls, n_sysctls; /* path, value, path, value ...: n_sysctls strings */
        uint32_t ops, n_ops; /* struct shim_req_op (8-aligned) */
        uint32_t groups, n_groups; /* uint32 (4-aligned) */
        uint32_t seccomp, seccomp_len; /* struct sock_filter (8-aligned), seccomp_len entries */
        uint32_t trace; /* the stages send trace records (`--trace`): stage 1's come as R_TRACE */
};

/* Right after the header in an SBX2 request (protocol version 2). */
struct shim_req_ext {
        int32_t cgroup_root_fd; /* fd index, or -1 */
        uint32_t join_cgroups, n_join_cgroups; /* string offsets (4-aligned), relative to it */
        uint32_t pad;
};

struct shim_req_op {
        uint32_t kind; /* SBX_OP_* */
        uint32_t source, target, fstype, data; /* string offsets */
        uint32_t pad;
        uint64_t flags;
};

#endif
