/* mounts.c: the container's mount plan, executed in stage 2 inside its new mount namespace.
 *
 * Python builds the plan as data (a list of sbx_mount_op, as bubblewrap's setup ops); this file
 * runs it in one loop. Every target is resolved inside the new root with openat2(RESOLVE_IN_ROOT)
 * (security-reliability.md 1.11): its parent path follows the image's symlinks but never out of
 * the root (so `/var/run -> /run` works), the last component is opened O_PATH|O_NOFOLLOW and must
 * be what the mount needs (a real directory, or a regular file for a file bind). A symlink, FIFO,
 * socket or device at a target is refused with its path: an existing target is never opened for
 * reading or writing (a FIFO at /etc/hosts would block), a missing file target is created with
 * O_CREAT|O_EXCL. Mounts land on the resolved fd (/proc/self/fd/N or move_mount), never on a path
 * string re-resolved later (runc CVE-2019-19921, CVE-2023-27561, CVE-2021-30465).
 *
 * Binds are detached trees (open_tree OPEN_TREE_CLONE) given their flags with mount_setattr before
 * they are attached, so a read-only bind keeps nosuid/nodev/noexec (mount_setattr only sets the
 * bits asked for) and there is no remount through a path.
 *
 * Runs after fork: no malloc, no stdio.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

#define FD_PATH_SIZE 32
#define SHOWN_PATH 200 /* sizeof sbx_err.path */

/* Fail naming the target as the container sees it ("/etc/hosts", not "etc/hosts"). */
static int fail_at(struct sbx_err *e, int err, const char *op, const char *target)
{
        char shown[SHOWN_PATH];
        shown[0] = '/';
        sbx_copy(shown + 1, sizeof shown - 1, target[0] == '/' ? target + 1 : target);
        return sbx_fail(e, SBX_STAGE_SETUP, err, op, shown);
}

/* Resolve `path` as if `rootfd` were "/": symlinks in the image are followed but can never lead
 * out of it (RESOLVE_IN_ROOT), magic links (/proc/self/...) are refused. `flags` may add
 * O_NOFOLLOW (the last component itself is then opened, even a symlink) or O_DIRECTORY. */
static int resolve_in_root(int rootfd, const char *path, int flags)
{
        struct open_how how = {
                .flags = (unsigned long long)(flags | O_PATH | O_CLOEXEC),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

static int append(char *dst, size_t size, size_t *len, const char *src)
{
        size_t n = strlen(src);
        if (*len + n >= size)
                return -1;
        memcpy(dst + *len, src, n + 1);
        *len += n;
        return 0;
}

/* mkdir -p of `dir` inside the root: each missing component is made with mkdirat on its parent,
 * itself resolved in the root (mountPaths of volumes need not exist in the image; the kubelet
 * creates them). A dangling symlink on the way is followed as the kernel would inside the root:
 * its target (absolute ones from the root) is created instead, at most 40 links deep (runc's
 * MkdirAllInRoot), so an image's `/mnt -> /host/dir` creates <root>/host/dir, never a host path. */
static int mkdir_all_in_root(int rootfd, const char *dir, struct sbx_err *e)
{
        char path[PATH_MAX];
        if (sbx_copy(path, sizeof path, dir) < 0)
                return fail_at(e, ENAMETOOLONG, "mkdir", dir);
        int hops = 0;
restart:
        for (char *p = path;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                char *slash = strrchr(path, '/');
                const char *name = slash ? slash + 1 : path;
                if (*name && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
                        int have = resolve_in_root(rootfd, path, O_DIRECTORY);
                        if (have >= 0) {
                                close(have);
                        } else {
                                if (slash)
                                        *slash = '\0';
                                int parent = resolve_in_root(rootfd, slash && *path ? path : ".", O_DIRECTORY);
                                if (slash)
                                        *slash = '/';
                                if (parent < 0)
                                        return fail_at(e, errno, "open parent directory", path);
                                int rc = mkdirat(parent, name, 0755);
                                int err = errno;
                                char link[PATH_MAX];
                                ssize_t n = rc < 0 && err == EEXIST ? readlinkat(parent, name, link, sizeof link - 1) : -1;
                                close(parent);
                                if (n > 0) {
                                        if (++hops > 40)
                                                return fail_at(e, ELOOP, "mkdir", path);
                                        link[n] = '\0';
                                        /* path := <dir of this component>/<link> + the rest */
                                        char next[PATH_MAX];
                                        size_t len = 0;
                                        next[0] = '\0';
                                        if (link[0] != '/' && slash) {
                                                *slash = '\0';
                                                int bad = append(next, sizeof next, &len, path);
                                                *slash = '/';
                                                if (bad < 0 || append(next, sizeof next, &len, "/") < 0)
                                                        return fail_at(e, ENAMETOOLONG, "mkdir", dir);
                                        }
                                        if (append(next, sizeof next, &len, link) < 0 ||
                                            (saved && (append(next, sizeof next, &len, "/") < 0 ||
                                                       append(next, sizeof next, &len, p + 1) < 0)))
                                                return fail_at(e, ENAMETOOLONG, "mkdir", dir);
                                        memcpy(path, next, len + 1);
                                        goto restart;
                                }
                                if (rc < 0)  /* EEXIST here: a non-directory */
                                        return fail_at(e, err == EEXIST ? ENOTDIR : err, "mkdir", path);
                        }
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

/* Split "a/b/c" into a resolved parent fd ("a/b", symlinks followed inside the root, created when
 * missing) and the last component ("c"). */
static int open_parent(int rootfd, const char *target, char *name, size_t name_size, struct sbx_err *e)
{
        char parent[PATH_MAX];
        if (sbx_copy(parent, sizeof parent, target) < 0)
                return fail_at(e, ENAMETOOLONG, "resolve", target);
        char *slash = strrchr(parent, '/');
        const char *base = slash ? slash + 1 : parent;
        if (sbx_copy(name, name_size, base) < 0 || !*name || !strcmp(name, ".") || !strcmp(name, ".."))
                return fail_at(e, EINVAL, "resolve", target);
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
                return fail_at(e, errno, "open parent directory", target);
        return fd;
}

/* Refuse what a mount must not land on. `st` is of an O_PATH|O_NOFOLLOW fd. */
static int check_kind(const struct stat *st, int want_dir, const char *target, struct sbx_err *e)
{
        if (want_dir && !S_ISDIR(st->st_mode))
                return fail_at(e, ENOTDIR, "must be mounted on ordinary directory", target);
        if (!want_dir && !S_ISREG(st->st_mode))
                return fail_at(e, S_ISDIR(st->st_mode) ? EISDIR : EINVAL,
                               "must be mounted on ordinary file", target);
        return 0;
}

/* Resolve `target` in the new root, creating it (a directory, or an empty file with O_EXCL) when
 * missing. Returns an O_PATH fd of a real directory or regular file; anything else is refused
 * without ever being opened for I/O. */
static int open_target(int rootfd, const char *target, int want_dir, struct sbx_err *e)
{
        char name[NAME_MAX + 1];
        int parent = open_parent(rootfd, target, name, sizeof name, e);
        if (parent < 0)
                return -1;
        int fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                int rc;
                if (want_dir) {
                        rc = mkdirat(parent, name, 0755);
                } else {
                        rc = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                        if (rc >= 0)
                                close(rc);
                }
                if (rc < 0 && errno != EEXIST) {
                        fail_at(e, errno, want_dir ? "mkdir mountpoint" : "create mountpoint", target);
                        close(parent);
                        return -1;
                }
                fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        int saved = errno;
        close(parent);
        if (fd < 0)
                return fail_at(e, saved, "open mountpoint", target);
        struct stat st;
        if (fstat(fd, &st) < 0) {
                fail_at(e, errno, "stat mountpoint", target);
                close(fd);
                return -1;
        }
        if (check_kind(&st, want_dir, target, e) < 0) {
                close(fd);
                return -1;
        }
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
                return fail_at(e, saved, "mount", op->target);
        return 0;
}

/* MS_RDONLY/NOSUID/NODEV/NOEXEC share their bits with MOUNT_ATTR_*. */
#define ATTR_BITS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
/* A bind's propagation (mountPropagation): mount_setattr's `propagation` takes one of these. */
#define PROPAGATION_BITS (MS_PRIVATE | MS_SLAVE | MS_SHARED)

/* Attach the detached tree `tree` on the O_PATH fd `fd`, first setting `flags` (MS_RDONLY...) and
 * its propagation (MS_SLAVE...) on every mount of it; the bits not asked for stay as they were. */
static int attach_tree(int tree, int fd, unsigned long flags, const char *target, struct sbx_err *e)
{
        if (flags & (ATTR_BITS | PROPAGATION_BITS)) {
                struct mount_attr attr = {
                        .attr_set = flags & ATTR_BITS,
                        .propagation = flags & PROPAGATION_BITS,
                };
                if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
                        return fail_at(e, errno, "set bind mount flags", target);
        }
        if (syscall(SYS_move_mount, tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return fail_at(e, errno, "attach bind mount", target);
        return 0;
}

/* Resolve `path` beneath the directory `dirfd`: symlinks are followed only while they stay below
 * it (an absolute one, or `..` above it, fails with EXDEV), magic links are refused. */
static int resolve_beneath(int dirfd, const char *path, int flags)
{
        struct open_how how = {
                .flags = (unsigned long long)(flags | O_PATH | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* mkdirat the last component `name` of `prefix` (a prefix of the writable `prefix` buffer) in its
 * parent resolved beneath `vol`, unless it exists; chmod `mode` on what it made. */
static int make_one_beneath(int vol, char *prefix, char *name, mode_t mode, struct sbx_err *e)
{
        int have = resolve_beneath(vol, prefix, O_DIRECTORY);
        if (have >= 0) {
                close(have);
                return 0;
        }
        if (errno != ENOENT)  /* within the missing subPath's making: the kubelet's SafeMakeDir */
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "create subPath (open)", prefix);
        int parent;
        if (name == prefix) {
                parent = resolve_beneath(vol, ".", O_DIRECTORY);
        } else {
                char *slash = name - 1;
                *slash = '\0';
                parent = resolve_beneath(vol, prefix, O_DIRECTORY);
                *slash = '/';
        }
        if (parent < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "create subPath (open parent)", prefix);
        int rc = mkdirat(parent, name, mode);
        int err = errno;
        if (rc == 0) {  /* ours: give it the mode the umask took away */
                int made = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                rc = made < 0 ? -1 : fchmod(made, mode);
                err = errno;
                if (made >= 0)
                        close(made);
        } else if (err == EEXIST) {
                rc = 0;  /* made meanwhile: resolved again by the caller */
        }
        close(parent);
        return rc < 0 ? sbx_fail(e, SBX_STAGE_SETUP, err, "create subPath", prefix) : 0;
}

/* mkdir -p of `sub` beneath the volume `vol`, each missing directory made with `mode` (chmod'ed:
 * the umask does not apply), as the kubelet's SafeMakeDir creates a missing subPath with the
 * volume's own mode. Every parent is resolved beneath `vol` again, so a symlink swapped in
 * meanwhile can move the new directory within the volume, never out of it. */
static int mkdir_beneath(int vol, const char *sub, mode_t mode, struct sbx_err *e)
{
        char path[PATH_MAX];
        if (sbx_copy(path, sizeof path, sub) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, ENAMETOOLONG, "create subPath", sub);
        /* Each prefix "a", "a/b", ... in turn: `name` is its last component, `end` the slash after. */
        for (char *name = path, *end;; name = end + 1) {
                end = strchr(name, '/');
                if (end)
                        *end = '\0';
                if (*name && strcmp(name, ".") != 0 && make_one_beneath(vol, path, name, mode, e) < 0)
                        return -1;
                if (!end)
                        return 0;
                *end = '/';
        }
}

/* The O_PATH fd of `op->data` beneath the host directory `op->source` (a volume's subPath),
 * created as a directory when missing (the kubelet does). The caller binds this fd, so nothing
 * the container does to the volume afterwards (a symlink swapped in a loop: CVE-2017-1002101)
 * changes what gets mounted. */
static int open_sub_path(const struct sbx_mount_op *op, struct sbx_err *e)
{
        int vol = open(op->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (vol < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "open volume", op->source);
        struct stat st;
        int fd = fstat(vol, &st) < 0 ? -1 : resolve_beneath(vol, op->data, 0);
        if (fd < 0 && errno == ENOENT) {
                if (mkdir_beneath(vol, op->data, st.st_mode & 07777, e) < 0) {
                        close(vol);
                        return -1;
                }
                fd = resolve_beneath(vol, op->data, 0);
        }
        int saved = errno;
        close(vol);
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, saved, "open subPath", op->data);
        return fd;
}

/* Clone the mount tree at the bind's source: a host path named by the runtime (a node under /dev,
 * a pod file, a volume), or for SBX_OP_BIND_BENEATH the fd of the sub path opened beneath it. */
static int clone_source(const struct sbx_mount_op *op, struct sbx_err *e)
{
        if (op->kind != SBX_OP_BIND_BENEATH) {
                int tree = (int)syscall(SYS_open_tree, AT_FDCWD, op->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
                return tree < 0 ? sbx_fail(e, SBX_STAGE_SETUP, errno, "open bind source", op->source) : tree;
        }
        int fd = open_sub_path(op, e);
        if (fd < 0)
                return -1;
        int tree = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        int saved = errno;
        close(fd);
        return tree < 0 ? sbx_fail(e, SBX_STAGE_SETUP, saved, "clone subPath", op->data) : tree;
}

/* Bind `tree` (a clone of the source, owned here; -1: clone it now) at the target, giving the
 * clone its flags and propagation before anyone can see it. */
static int do_bind(int rootfd, int tree, const struct sbx_mount_op *op, unsigned long flags, struct sbx_err *e)
{
        if (tree < 0)
                tree = clone_source(op, e);
        if (tree < 0)
                return -1;
        struct stat st;
        if (fstat(tree, &st) < 0) {
                close(tree);
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "stat bind source", op->source);
        }
        int fd = open_target(rootfd, op->target, S_ISDIR(st.st_mode), e);
        if (fd < 0) {
                close(tree);
                return -1;
        }
        int rc = attach_tree(tree, fd, flags, op->target, e);
        close(fd);
        close(tree);
        return rc;
}

static int is_bind(const struct sbx_mount_op *op)
{
        return op->kind == SBX_OP_BIND || op->kind == SBX_OP_BIND_BENEATH;
}

enum { SHARED_BINDS_MAX = 16 };

/* Bidirectional binds cloned before the copy of the host's mounts stops being their peer. */
struct shared_binds {
        int n;
        int op[SHARED_BINDS_MAX]; /* index in the plan */
        int tree[SHARED_BINDS_MAX]; /* its clone; -1 once handed to do_bind */
};

/* Make the copy of the host's mounts private, or, when a bind asks for propagation, a slave of
 * the host's (runc's rslave root): a clone of a slave stays a slave of the same master, so a mount
 * the host makes below a HostToContainer source appears in the container. A Bidirectional
 * (MS_SHARED) source is cloned first, while it is still a peer of the host's mount, so mounts made
 * on either side reach the other. */
static int prepare_propagation(const struct sbx_spawn_req *req, struct shared_binds *shared, int *slave,
                               struct sbx_err *e)
{
        shared->n = 0;
        *slave = 0;
        for (int i = 0; i < req->n_ops; i++) {
                const struct sbx_mount_op *op = &req->ops[i];
                if (!is_bind(op) || !(op->flags & (MS_SLAVE | MS_SHARED)))
                        continue;
                *slave = 1;
                if (!(op->flags & MS_SHARED))
                        continue;
                if (shared->n == SHARED_BINDS_MAX)
                        return fail_at(e, E2BIG, "too many Bidirectional mounts", op->target);
                int tree = clone_source(op, e);
                if (tree < 0)
                        return -1;
                shared->op[shared->n] = i;
                shared->tree[shared->n++] = tree;
        }
        unsigned long how = *slave ? MS_SLAVE : MS_PRIVATE;
        if (mount(NULL, "/", NULL, MS_REC | how, NULL) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "make mounts private", "/");
        return 0;
}

/* Op i's pre-made clone, handed over to the caller; -1: none. */
static int take_shared(struct shared_binds *shared, int i)
{
        for (int k = 0; k < shared->n; k++) {
                if (shared->op[k] == i) {
                        int tree = shared->tree[k];
                        shared->tree[k] = -1;
                        return tree;
                }
        }
        return -1;
}

static void close_shared(struct shared_binds *shared)
{
        for (int k = 0; k < shared->n; k++)
                if (shared->tree[k] >= 0)
                        close(shared->tree[k]);
        shared->n = 0;
}

/* A /dev/null checked to be the real one (a char device 1:3), opened once per plan: masks bind it
 * from this fd, so nothing the container controls (its own /dev, a racing symlink) can turn a mask
 * into a writable bind of something else (runc CVE-2025-31133). */
static int verified_null(int *null_fd, struct sbx_err *e)
{
        if (*null_fd >= 0)
                return *null_fd;
        int fd = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "open", "/dev/null");
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3) {
                close(fd);
                return sbx_fail(e, SBX_STAGE_SETUP, EINVAL, "not the null device", "/dev/null");
        }
        *null_fd = fd;
        return fd;
}

/* A masked path (containerd's maskedPaths): a file gets the verified /dev/null bound over it
 * (read-only, unlike runc's: it reads empty, writes still go to the null device, but touch or chmod
 * fail with EROFS instead of changing the host's /dev/null inode), a directory an empty read-only
 * tmpfs. A path the kernel or image does not have is skipped. */
enum { SKIPPED = 1 }; /* do_mask and do_readonly: the path is not in the root (nothing to do) */

static int do_mask(int rootfd, int *null_fd, const struct sbx_mount_op *op, struct sbx_err *e)
{
        int fd = resolve_in_root(rootfd, op->target, O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? SKIPPED : fail_at(e, errno, "open masked path", op->target);
        struct stat st;
        int rc = fstat(fd, &st);
        char at[FD_PATH_SIZE];
        fd_path(at, fd);
        if (rc < 0) {
                rc = fail_at(e, errno, "stat masked path", op->target);
        } else if (S_ISDIR(st.st_mode)) {
                if (mount("tmpfs", at, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=755") < 0)
                        rc = fail_at(e, errno, "mask directory", op->target);
        } else if (S_ISLNK(st.st_mode)) {
                rc = fail_at(e, ELOOP, "masked path is a symlink", op->target);
        } else {
                int null = verified_null(null_fd, e);
                int tree = null < 0 ? -1 : (int)syscall(SYS_open_tree, null, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (null < 0)
                        rc = -1;
                else if (tree < 0)
                        rc = fail_at(e, errno, "clone /dev/null", op->target);
                else  /* read-only: the host's node's attributes cannot be changed through it */
                        rc = attach_tree(tree, fd, MS_RDONLY | MS_NOSUID | MS_NOEXEC, op->target, e);
                if (tree >= 0)
                        close(tree);
        }
        close(fd);
        return rc < 0 ? -1 : 0;
}

/* A read-only path (containerd's readonlyPaths): bound on itself, recursively, and made read-only;
 * the nosuid/nodev/noexec it had are kept (mount_setattr sets only RDONLY). Missing: skipped. */
static int do_readonly(int rootfd, const struct sbx_mount_op *op, struct sbx_err *e)
{
        int fd = resolve_in_root(rootfd, op->target, O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? SKIPPED : fail_at(e, errno, "open read-only path", op->target);
        struct stat st;
        int rc = 0;
        if (fstat(fd, &st) < 0)
                rc = fail_at(e, errno, "stat read-only path", op->target);
        else if (S_ISLNK(st.st_mode))
                rc = fail_at(e, ELOOP, "read-only path is a symlink", op->target);
        int tree = rc < 0 ? -1 : (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (rc == 0 && tree < 0)
                rc = fail_at(e, errno, "clone read-only path", op->target);
        if (tree >= 0) {
                rc = attach_tree(tree, fd, MS_RDONLY | op->flags, op->target, e);
                close(tree);
        }
        close(fd);
        return rc < 0 ? -1 : 0;
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
                return fail_at(e, saved, "symlink", op->target);
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
                return fail_at(e, saved, "mkdir", op->target);
        return 0;
}

static int do_attach(int rootfd, int tree, const struct sbx_mount_op *op, struct sbx_err *e)
{
        if (tree < 0)
                return fail_at(e, EBADF, "no pod mount to attach at", op->target);
        int fd = open_target(rootfd, op->target, 1, e);
        if (fd < 0)
                return -1;
        long rc = syscall(SYS_move_mount, tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
        int saved = errno;
        close(fd);
        if (rc < 0)
                return fail_at(e, saved, "attach pod mount", op->target);
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
        /* A copy of the host's mount table must not propagate anything back to it (a Bidirectional
         * bind, privileged only, is the one exception). */
        struct shared_binds shared;
        int slave = 0;
        if (prepare_propagation(req, &shared, &slave, e) < 0) {
                close_shared(&shared);
                return -1;
        }
        int rootfd = -1;
        int null_fd = -1;
        int rc = 0;
        for (int i = 0; i < req->n_ops && rc == 0; i++) {
                const struct sbx_mount_op *op = &req->ops[i];
                if (op->kind == SBX_OP_ROOT) {
                        if (rootfd >= 0)
                                close(rootfd);
                        rootfd = mount_root(op, e);
                        rc = rootfd < 0 ? -1 : 0;
                } else if (op->kind == SBX_OP_CHDIR) {
                        /* overlayfs resolves a relative lowerdir against the mounting task's cwd:
                         * the image store's short layer links keep deep images within the one
                         * page mount(2) copies (sbx_pivot moves the cwd to the new root later) */
                        if (chdir(op->target) < 0)
                                rc = sbx_fail(e, SBX_STAGE_SETUP, errno, "chdir to layer links", op->target);
                } else if (rootfd < 0) {
                        rc = sbx_fail(e, SBX_STAGE_SETUP, EINVAL, "mount plan has no root before", op->target);
                } else if (op->kind == SBX_OP_MOUNT) {
                        rc = do_mount(rootfd, op, e);
                } else if (is_bind(op)) {
                        /* In a slave copy, a bind that asked for nothing is made private. */
                        unsigned long flags = op->flags;
                        if (slave && !(flags & PROPAGATION_BITS))
                                flags |= MS_PRIVATE;
                        rc = do_bind(rootfd, take_shared(&shared, i), op, flags, e);
                } else if (op->kind == SBX_OP_SYMLINK) {
                        rc = do_symlink(rootfd, op, e);
                } else if (op->kind == SBX_OP_POD_MOUNT) {
                        rc = do_attach(rootfd, pod_mount_fd, op, e);
                } else if (op->kind == SBX_OP_MKDIR) {
                        rc = do_mkdir(rootfd, op, e);
                } else if (op->kind == SBX_OP_MASK) {
                        rc = do_mask(rootfd, &null_fd, op, e);
                } else if (op->kind == SBX_OP_READONLY) {
                        rc = do_readonly(rootfd, op, e);
                } else {
                        rc = sbx_fail(e, SBX_STAGE_SETUP, EINVAL, "unknown mount op", op->target);
                }
                if (rc >= 0)
                        sbx_report(SBX_STAGE_SETUP, SBX_TRACE_MOUNT, i, rc == SKIPPED, op->target);
                rc = rc < 0 ? -1 : 0;
        }
        if (null_fd >= 0)
                close(null_fd);
        close_shared(&shared);
        if (rc < 0) {
                if (rootfd >= 0)
                        close(rootfd);
                return -1;
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
        if (readonly) {
                /* Only RDONLY is set: the root keeps its nosuid/nodev (a plain MS_REMOUNT|MS_BIND
                 * |MS_RDONLY would clear them). */
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
                if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof attr) < 0)
                        return sbx_fail(e, SBX_STAGE_SETUP, errno, "remount root read-only", "/");
        }
        sbx_report(SBX_STAGE_SETUP, SBX_TRACE_PIVOT, readonly, 0, NULL);
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

int sbx_mount_tmpfs(const char *target, unsigned long flags, const char *data, struct sbx_err *e)
{
        /* The runtime's own mounts in the host's namespace (a pod's bounded files directory). */
        int fd = open(target, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, errno, "open mountpoint", target);
        char at[FD_PATH_SIZE];
        fd_path(at, fd);
        int rc = mount("tmpfs", at, "tmpfs", flags, data);
        int saved = errno;
        close(fd);
        if (rc < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, saved, "mount tmpfs", target);
        return 0;
}

int sbx_umount(const char *target, struct sbx_err *e)
{
        if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, errno, "unmount", target);
        return 0;
}

#ifndef RENAME_EXCHANGE /* <linux/fs.h>'s value; musl's headers do not have it */
#define RENAME_EXCHANGE (1 << 1)
#endif

int sbx_rename_exchange(const char *from, const char *to, struct sbx_err *e)
{
        if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, errno, "exchange", to);
        return 0;
}

int sbx_flock(int fd, int op, struct sbx_err *e)
{
        if (flock(fd, op) < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, errno, "flock", "");
        return 0;
}

#ifndef FS_IOC_GETFLAGS /* <linux/fs.h>'s values: that header clashes with glibc's <sys/mount.h> */
#define FS_IOC_GETFLAGS _IOR('f', 1, long)
#define FS_IOC_SETFLAGS _IOW('f', 2, long)
#endif

int sbx_add_inode_flags(int fd, int flags, struct sbx_err *e)
{
        int current; /* the kernel reads and writes an int, whatever the ioctl's number says */

        if (ioctl(fd, FS_IOC_GETFLAGS, &current) < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, errno, "get inode flags", "");
        if ((current & flags) == flags)
                return 0;
        current |= flags;
        if (ioctl(fd, FS_IOC_SETFLAGS, &current) < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, errno, "set inode flags", "");
        return 0;
}
