/* mounts.c: the container's mount plan, executed in stage 2 inside its new mount namespace.
 *
 * Python builds the plan as data (a list of sbx_mount_op, as bubblewrap's setup ops); this file
 * runs it in one loop. Every target is resolved inside the new root with openat2(RESOLVE_IN_ROOT),
 * its last component never a symlink, and mounted through /proc/self/fd/N, never through a path
 * string that could be re-resolved later: a symlink planted in an image at /proc or /dev must not
 * redirect a mount onto the host (runc CVE-2019-19921, CVE-2023-27561, CVE-2021-30465).
 *
 * Runs after fork: no malloc, no stdio.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

#define FD_PATH_SIZE 32

/* Resolve `path` as if `rootfd` were "/": symlinks in the image are followed but can never lead
 * out of it (RESOLVE_IN_ROOT), magic links (/proc/self/...) are refused, and the last component
 * itself must not be a symlink (O_NOFOLLOW): a mount lands on what the path names, not on what a
 * planted link points to. */
static int resolve_in_root(int rootfd, const char *path, int flags)
{
        struct open_how how = {
                .flags = (unsigned long long)(flags | O_PATH | O_CLOEXEC | O_NOFOLLOW),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* mkdir -p of `dir` inside the root, one component at a time, each parent resolved in the root
 * (mountPaths of volumes need not exist in the image; the kubelet creates them). */
static int mkdir_all_in_root(int rootfd, const char *dir, struct sbx_err *e)
{
        char path[PATH_MAX];
        if (sbx_copy(path, sizeof path, dir) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, ENAMETOOLONG, "mkdir", dir);
        for (char *p = path;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                char *slash = strrchr(path, '/');
                const char *name = slash ? slash + 1 : path;
                if (*name) {
                        if (slash)
                                *slash = '\0';
                        int parent = resolve_in_root(rootfd, slash && *path ? path : ".", O_DIRECTORY);
                        if (slash)
                                *slash = '/';
                        if (parent < 0)
                                return sbx_fail(e, SBX_STAGE_SETUP, errno, "open parent directory", path);
                        int rc = mkdirat(parent, name, 0755);
                        int err = errno;
                        close(parent);
                        if (rc < 0 && err != EEXIST)
                                return sbx_fail(e, SBX_STAGE_SETUP, err, "mkdir", path);
                }
                *p = saved;
                if (saved == '\0')
                        return 0;
        }
}

static void fd_path(char buf[FD_PATH_SIZE], int fd)
{
        /* "/proc/self/fd/" + decimal fd, without snprintf (not async-signal-safe). */
        char digits[12];
        int n = 0;
        unsigned v = (unsigned)fd;
        do {
                digits[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        memcpy(buf, "/proc/self/fd/", 14);
        for (int i = 0; i < n; i++)
                buf[14 + i] = digits[n - 1 - i];
        buf[14 + n] = '\0';
}

/* Split "a/b/c" into a resolved parent fd ("a/b") and the last component ("c"). */
static int open_parent(int rootfd, const char *target, char *name, size_t name_size, struct sbx_err *e)
{
        char parent[PATH_MAX];
        if (sbx_copy(parent, sizeof parent, target) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, ENAMETOOLONG, "resolve", target);
        char *slash = strrchr(parent, '/');
        const char *base = slash ? slash + 1 : parent;
        if (sbx_copy(name, name_size, base) < 0 || !*name)
                return sbx_fail(e, SBX_STAGE_SETUP, EINVAL, "resolve", target);
        if (slash)
                *slash = '\0';
        const char *where = slash && *parent ? parent : ".";
        int fd = resolve_in_root(rootfd, where, O_DIRECTORY);
        if (fd < 0 && errno == ENOENT) {
                if (mkdir_all_in_root(rootfd, where, e) < 0)
                        return -1;
                fd = resolve_in_root(rootfd, where, O_DIRECTORY);
        }
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "open parent directory", target);
        return fd;
}

/* Resolve `target` in the new root, creating it (a directory, or an empty file for file binds)
 * when missing. Returns an O_PATH fd of a real directory/file, never of a symlink. */
static int open_target(int rootfd, const char *target, int want_dir, struct sbx_err *e)
{
        char name[NAME_MAX + 1];
        int parent = open_parent(rootfd, target, name, sizeof name, e);
        if (parent < 0)
                return -1;
        if (want_dir) {
                if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
                        sbx_fail(e, SBX_STAGE_SETUP, errno, "mkdir", target);
                        close(parent);
                        return -1;
                }
        } else {
                int f = openat(parent, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (f < 0 && errno != EISDIR) {
                        sbx_fail(e, SBX_STAGE_SETUP, errno, "create mountpoint", target);
                        close(parent);
                        return -1;
                }
                if (f >= 0)
                        close(f);
        }
        int fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0));
        int saved = errno;
        close(parent);
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, saved == ELOOP ? ENOTDIR : saved,
                                "must be mounted on ordinary directory or file", target);
        return fd;
}

static int do_mount(int rootfd, const struct sbx_mount_op *op, struct sbx_err *e)
{
        int fd = open_target(rootfd, op->target, 1, e);
        if (fd < 0)
                return -1;
        char at[FD_PATH_SIZE];
        fd_path(at, fd);
        int rc = mount(op->source, at, op->fstype, op->flags, op->data);
        int saved = errno;
        close(fd);
        if (rc < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, saved, "mount", op->target);
        return 0;
}

static int do_bind(int rootfd, const struct sbx_mount_op *op, struct sbx_err *e)
{
        struct stat st;
        if (stat(op->source, &st) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "stat bind source", op->source);
        int fd = open_target(rootfd, op->target, S_ISDIR(st.st_mode), e);
        if (fd < 0)
                return -1;
        char at[FD_PATH_SIZE];
        fd_path(at, fd);
        int rc = mount(op->source, at, NULL, MS_BIND | MS_REC, NULL);
        if (rc == 0 && (op->flags & ~(unsigned long)(MS_BIND | MS_REC))) {
                /* Bind mounts ignore MS_RDONLY and friends until remounted (mount(2)). The fd still
                 * names the mountpoint below, so re-resolve the new mount through the root. */
                close(fd);
                fd = resolve_in_root(rootfd, op->target, 0);
                if (fd < 0)
                        return sbx_fail(e, SBX_STAGE_SETUP, errno, "reopen bind mount", op->target);
                fd_path(at, fd);
                rc = mount(NULL, at, NULL, MS_BIND | MS_REMOUNT | op->flags, NULL);
        }
        int saved = errno;
        close(fd);
        if (rc < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, saved, "bind mount", op->target);
        return 0;
}

static int do_symlink(int rootfd, const struct sbx_mount_op *op, struct sbx_err *e)
{
        char name[NAME_MAX + 1];
        int parent = open_parent(rootfd, op->target, name, sizeof name, e);
        if (parent < 0)
                return -1;
        int rc = symlinkat(op->source, parent, name);
        int saved = errno;
        close(parent);
        if (rc < 0 && saved != EEXIST)
                return sbx_fail(e, SBX_STAGE_SETUP, saved, "symlink", op->target);
        return 0;
}

static int do_mkdir(int rootfd, const struct sbx_mount_op *op, struct sbx_err *e)
{
        char name[NAME_MAX + 1];
        int parent = open_parent(rootfd, op->target, name, sizeof name, e);
        if (parent < 0)
                return -1;
        int rc = mkdirat(parent, name, (mode_t)op->flags);
        int saved = errno;
        close(parent);
        if (rc < 0 && saved != EEXIST)
                return sbx_fail(e, SBX_STAGE_SETUP, saved, "mkdir", op->target);
        return 0;
}

static int do_attach(int rootfd, int tree, const struct sbx_mount_op *op, struct sbx_err *e)
{
        if (tree < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, EBADF, "no pod mount to attach at", op->target);
        int fd = open_target(rootfd, op->target, 1, e);
        if (fd < 0)
                return -1;
        long rc = syscall(SYS_move_mount, tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
        int saved = errno;
        close(fd);
        if (rc < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, saved, "attach pod mount", op->target);
        return 0;
}

static int mount_root(const struct sbx_mount_op *op, struct sbx_err *e)
{
        if (mount(op->source, op->target, op->fstype, op->flags, op->data) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "mount root", op->target);
        int fd = open(op->target, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "open root", op->target);
        return fd;
}

int sbx_run_mount_plan(const struct sbx_spawn_req *req, int pod_mount_fd, struct sbx_err *e)
{
        /* A copy of the host's mount table must not propagate anything back to it. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "make mounts private", "/");
        int rootfd = -1;
        for (int i = 0; i < req->n_ops; i++) {
                const struct sbx_mount_op *op = &req->ops[i];
                int rc;
                if (op->kind == SBX_OP_ROOT) {
                        if (rootfd >= 0)
                                close(rootfd);
                        rc = rootfd = mount_root(op, e);
                } else if (rootfd < 0) {
                        rc = sbx_fail(e, SBX_STAGE_SETUP, EINVAL, "mount plan has no root before", op->target);
                } else if (op->kind == SBX_OP_MOUNT) {
                        rc = do_mount(rootfd, op, e);
                } else if (op->kind == SBX_OP_BIND) {
                        rc = do_bind(rootfd, op, e);
                } else if (op->kind == SBX_OP_SYMLINK) {
                        rc = do_symlink(rootfd, op, e);
                } else if (op->kind == SBX_OP_POD_MOUNT) {
                        rc = do_attach(rootfd, pod_mount_fd, op, e);
                } else if (op->kind == SBX_OP_MKDIR) {
                        rc = do_mkdir(rootfd, op, e);
                } else {
                        rc = sbx_fail(e, SBX_STAGE_SETUP, EINVAL, "unknown mount op", op->target);
                }
                if (rc < 0) {
                        if (rootfd >= 0)
                                close(rootfd);
                        return -1;
                }
        }
        if (rootfd < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, EINVAL, "mount plan has no root", "");
        return rootfd;
}

int sbx_pivot(int rootfd, int readonly, struct sbx_err *e)
{
        /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the
         * new root, without needing a put_old directory in the image (runc does the same). */
        if (fchdir(rootfd) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "chdir to new root", "");
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "pivot_root", "");
        if (umount2(".", MNT_DETACH) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "detach old root", "");
        if (chdir("/") < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "chdir", "/");
        if (readonly && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "remount root read-only", "/");
        return 0;
}

int sbx_enter_cwd(const char *cwd, struct sbx_err *e)
{
        char path[PATH_MAX];
        if (!cwd || !*cwd)
                cwd = "/";
        if (sbx_copy(path, sizeof path, cwd) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, ENAMETOOLONG, "workingDir", cwd);
        /* Like runc, create a missing working directory (mkdir -p) inside the container root. */
        for (char *p = path + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return sbx_fail(e, SBX_STAGE_SETUP, errno, "create workingDir", path);
                *p = '/';
        }
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "create workingDir", path);
        if (chdir(path) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "chdir workingDir", path);
        return 0;
}
