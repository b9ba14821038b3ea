/* extract.c: one OCI layer (gzip or plain tar) unpacked from buffers fed as they arrive.
 *
 * sandbox/images/extract.py's docstring is the specification; this is the same extractor as a
 * state machine with no Python in the loop: cffi releases the GIL around each call, so the layer
 * threads of a pull run truly in parallel (issue 12's pull speed). Each fed buffer is inflated
 * (isa-l's igzip where found, else zlib), hashed (the diff_id, libcrypto's SHA-256), and parsed
 * as tar into files below a directory fd. zlib, isa-l and libcrypto are dlopen()ed on the first
 * layer: `sandbox run` loads this module too and must not pay for them (Python's hashlib has
 * libcrypto mapped already). isa-l is optional twice over: without <isa-l/igzip_lib.h> at build
 * time (libisal-dev) or libisal.so.2 at run time, gzip goes through zlib.
 *
 * Hostile input: every length is checked against its buffer, extended headers are bounded to
 * 1 MiB (Go archive/tar's limit), nothing recurses on input depth (directories are removed by an
 * iterative walk), and every path is reached from the layer's fd one component at a time without
 * following a symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS first, a per-component walk
 * where that fails, which creates missing parents and names the component that is not a
 * directory). Errors fill struct sbx_layer_res: the entry's raw name and a detail, which the
 * Python side formats exactly as extract.py's LayerError.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <dirent.h>
#include <zlib.h>
#if defined(__has_include)
#if __has_include(<isa-l/igzip_lib.h>)
/* isa-l's inflate, 2-3x zlib's on real layers (a tar of /usr/bin, perl and python3's library:
 * 433 MB in 1.4-1.9 s against 3.4 s, this VM); a whole pull of bench/pull.py --content system
 * (6 layers, 47 MB of blobs of real files) 618 ms median against 889 with zlib, 11 interleaved
 * rounds; even on the default filler (stored blocks and long repeats: ~2 GB/s either way). Its
 * state's layout comes from the header, so struct inflate_state is allocated here; the functions
 * come from libisal.so.2 (its SONAME keeps that layout). */
#include <isa-l/igzip_lib.h>
#define HAVE_ISAL 1
#endif
#endif

#include "sbx.h"

#define BLOCK 512
#define MAX_NAME 4096 /* PATH_MAX, counting bytes */
#define MAX_COMPONENT 255 /* NAME_MAX */
#define MAX_LINK_TARGET 4095 /* symlink(2) fails with ENAMETOOLONG beyond PATH_MAX - 1 */
#define MAX_EXTENDED (1 << 20)
#define MAX_GLOBAL (1 << 20) /* every global PAX header together */
#define MAX_DIGIT_RUN 64
#define MAX_XATTRS 256 /* far past what one ext4 inode holds: more fail setxattr anyway */
#define INFLATE_OUT (256 << 10)
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* ---- zlib and libcrypto, resolved once ---------------------------------------------------- */

struct evp_md_ctx;
struct evp_md;
static struct {
        int ok;
        int (*inflate_init)(z_streamp, int, const char *, int);
        int (*inflate)(z_streamp, int);
        int (*inflate_end)(z_streamp);
        int (*inflate_reset)(z_streamp);
        int (*inflate_validate)(z_streamp, int);
        struct evp_md_ctx *(*ctx_new)(void);
        void (*ctx_free)(struct evp_md_ctx *);
        const struct evp_md *(*sha256)(void);
        int (*init)(struct evp_md_ctx *, const struct evp_md *, void *);
        int (*update)(struct evp_md_ctx *, const void *, size_t);
        int (*final)(struct evp_md_ctx *, unsigned char *, unsigned int *);
#ifdef HAVE_ISAL
        int isal; /* isa-l's inflate was found */
        void (*isal_init)(struct inflate_state *);
        void (*isal_reset)(struct inflate_state *);
        int (*isal_inflate)(struct inflate_state *);
#endif
} dl;
static pthread_once_t dl_once = PTHREAD_ONCE_INIT;

static void *sym(void *lib, const char *name, int *ok)
{
        void *p = lib ? dlsym(lib, name) : NULL;
        if (!p)
                *ok = 0;
        return p;
}

#define RESOLVE(lib, field, name) (*(void **)&dl.field = sym(lib, name, &ok))

static void load_libraries(void)
{
        static const char *const cryptos[] = { "libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so" };
        int ok = 1;
        void *z = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
        void *c = NULL;
        for (size_t i = 0; !c && i < sizeof cryptos / sizeof *cryptos; i++)
                c = dlopen(cryptos[i], RTLD_NOW | RTLD_LOCAL);
        RESOLVE(z, inflate_init, "inflateInit2_");
        RESOLVE(z, inflate, "inflate");
        RESOLVE(z, inflate_end, "inflateEnd");
        RESOLVE(z, inflate_reset, "inflateReset");
        RESOLVE(z, inflate_validate, "inflateValidate"); /* zlib >= 1.2.9 */
        RESOLVE(c, ctx_new, "EVP_MD_CTX_new");
        RESOLVE(c, ctx_free, "EVP_MD_CTX_free");
        RESOLVE(c, sha256, "EVP_sha256");
        RESOLVE(c, init, "EVP_DigestInit_ex");
        RESOLVE(c, update, "EVP_DigestUpdate");
        RESOLVE(c, final, "EVP_DigestFinal_ex");
        dl.ok = ok;
#ifdef HAVE_ISAL
        void *isal = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
        ok = 1;
        RESOLVE(isal, isal_init, "isal_inflate_init");
        RESOLVE(isal, isal_reset, "isal_inflate_reset");
        RESOLVE(isal, isal_inflate, "isal_inflate");
        dl.isal = ok;
        if (!ok && isal)
                dlclose(isal);
#endif
}

/* ---- state ---------------------------------------------------------------------------------- */

enum state { HEADER, EXTENDED, DATA, SKIP, END };

struct pax_rec {
        const char *key;
        size_t key_len;
        const char *value;
        size_t value_len;
};

struct pax_set {
        char *buf; /* the records' bytes (owned) */
        size_t len;
        struct pax_rec *recs;
        size_t n;
        size_t cap;
};

struct dir_rec {
        char *path; /* normalized: components joined by '/' */
        char *name; /* the entry's name, for messages (its first bytes) */
        size_t name_len;
        int depth;
        int alive;
        unsigned mode;
        long long mtime_ns;
        int mtime_bad;
};

struct entry {
        char type;
        long long size, uid, gid, devmajor, devminor;
        unsigned mode;
        long long mtime_ns;
        int mtime_bad;
        int sparse;
        const char *name; /* NUL not terminating: name_len counts */
        size_t name_len;
        const char *link;
        size_t link_len;
        struct pax_rec *xattrs[MAX_XATTRS];
        int n_xattrs;
};

struct sbx_layer {
        int root;
        int flags;
        int failed;
        /* inflate and hash */
        z_stream z;
        int z_live;
#ifdef HAVE_ISAL
        struct inflate_state *isal; /* set: gzip goes through isa-l, not `z` */
        int gz_state; /* where in the member's header (gunzip_isal) */
        unsigned gz_flags;
        unsigned char gz_fixed[10];
        size_t gz_have, gz_skip;
#endif
        int member_done; /* a gzip member ended: zeros may follow, or another member */
        struct evp_md_ctx *md;
        unsigned char *out;
        /* tar */
        enum state st;
        unsigned char hdr[BLOCK];
        size_t have;
        long long offset; /* bytes of tar consumed */
        long long header_at;
        int first;
        char ext_type; /* the pending extended header's type */
        unsigned char *ext;
        size_t ext_len, ext_need, ext_size;
        struct pax_set local, global;
        char **global_bufs; /* the global headers' bytes, which their records point into */
        size_t n_global_bufs;
        char *longname, *longlink;
        size_t longname_len, longlink_len;
        int pending; /* extended headers seen: the next header may not end the archive */
        long long skip;
        int fd; /* the regular file being written */
        long long remaining;
        struct entry e;
        char ustar_name[BLOCK]; /* prefix + '/' + name */
        char ustar_link[101];
        /* paths */
        char parts[MAX_NAME + 1];
        size_t part_at[MAX_NAME / 2 + 2];
        int n_parts;
        char cached_path[MAX_NAME + 1];
        int cached_fd;
        gid_t cached_gid;
        uid_t euid;
        gid_t egid;
        const char *op;
        /* directories: their mode and times come last */
        struct dir_rec *dirs;
        size_t n_dirs, cap_dirs;
        size_t *table; /* open addressing: index + 1, 0 empty */
        size_t table_cap;
        long long files, bytes;
};

/* ---- errors --------------------------------------------------------------------------------- */

static void set_subject(struct sbx_layer_res *res, const char *s, size_t n)
{
        if (n > sizeof res->subject)
                n = sizeof res->subject;
        memcpy(res->subject, s, n);
        res->subject_len = (int)n;
}

/* The error of the current entry (`entry` 1) or of the layer; `fmt` may hold one \x01 where the
 * Python side puts its rendering of res->subject. Always returns -1. */
static int fail(struct sbx_layer *l, struct sbx_layer_res *res, int entry, const char *fmt, ...)
{
        va_list ap;
        l->failed = 1;
        res->has_entry = entry;
        if (entry) {
                size_t n = l->e.name_len < sizeof res->entry ? l->e.name_len : sizeof res->entry;
                memcpy(res->entry, l->e.name, n);
                res->entry_len = (int)n;
        }
        va_start(ap, fmt);
        vsnprintf(res->detail, sizeof res->detail, fmt, ap);
        va_end(ap);
        return -1;
}

static int fail_os(struct sbx_layer *l, struct sbx_layer_res *res, int err)
{
        return fail(l, res, 1, "%s: %s", l->op, strerror(err));
}

/* ---- small helpers -------------------------------------------------------------------------- */

static int write_all(int fd, const unsigned char *p, size_t n)
{
        while (n) {
                ssize_t w = write(fd, p, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

static size_t cstrlen(const unsigned char *s, size_t max)
{
        const unsigned char *z = memchr(s, 0, max);
        return z ? (size_t)(z - s) : max;
}

static int all_zero(const unsigned char *b, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (b[i])
                        return 0;
        return 1;
}

/* tarfile's nti(): base-256 (0x80 positive, 0xff negative) or octal with spaces and NULs.
 * -1 when the field is not a number (tarfile's "invalid header") or out of range. */
static int number(const unsigned char *f, size_t n, long long *out)
{
        if (f[0] == 0x80 || f[0] == 0xff) {
                unsigned long long v = 0;
                for (size_t i = 1; i < n; i++) {
                        if (v >> 55)
                                return -1;
                        v = (v << 8) | f[i];
                }
                if (f[0] == 0x80) {
                        *out = (long long)v;
                        return 0;
                }
                if (n - 1 > 7) /* a negative 12-byte field (size, mtime): nothing real has one */
                        return -1;
                *out = (long long)v - (1LL << (8 * (n - 1))); /* -(256**(n-1) - v) */
                return 0;
        }
        size_t len = cstrlen(f, n), i = 0;
        while (i < len && (f[i] == ' ' || f[i] == '\t'))
                i++;
        while (len > i && (f[len - 1] == ' ' || f[len - 1] == '\t'))
                len--;
        int neg = 0;
        if (i < len && (f[i] == '+' || f[i] == '-'))
                neg = f[i++] == '-';
        long long v = 0;
        if (i == len && neg)
                return -1;
        for (; i < len; i++) {
                if (f[i] < '0' || f[i] > '7' || v > (LLONG_MAX >> 3))
                        return -1;
                v = (v << 3) | (f[i] - '0');
        }
        *out = neg ? -v : v;
        return 0;
}

static int checksum_ok(const unsigned char *b)
{
        long long want;
        if (number(b + 148, 8, &want) < 0)
                return 0;
        long long u = 256, s = 256;
        for (int i = 0; i < BLOCK; i++) {
                if (i >= 148 && i < 156)
                        continue;
                u += b[i];
                s += (signed char)b[i];
        }
        return want == u || want == s;
}

/* ---- PAX records ---------------------------------------------------------------------------- */

static void pax_clear(struct pax_set *p)
{
        free(p->buf);
        free(p->recs);
        memset(p, 0, sizeof *p);
}

/* `items` with room for one more element: the array doubles from `first` elements of `size`
 * bytes, *cap follows. NULL without memory (`items` still valid then). */
static void *reserve(void *items, size_t *cap, size_t used, size_t size, size_t first)
{
        if (used < *cap)
                return items;
        size_t grown = *cap ? *cap * 2 : first;
        void *p = realloc(items, grown * size);
        if (p)
                *cap = grown;
        return p;
}

static int pax_add(struct pax_set *p, const char *k, size_t kl, const char *v, size_t vl)
{
        struct pax_rec *recs = reserve(p->recs, &p->cap, p->n, sizeof *recs, 16);
        if (!recs)
                return -1;
        p->recs = recs;
        p->recs[p->n++] = (struct pax_rec){ k, kl, v, vl };
        return 0;
}

static int key_is(const struct pax_rec *r, const char *k)
{
        size_t n = strlen(k);
        return r->key_len == n && memcmp(r->key, k, n) == 0;
}

static int key_starts(const struct pax_rec *r, const char *k)
{
        size_t n = strlen(k);
        return r->key_len >= n && memcmp(r->key, k, n) == 0;
}

/* The last record named `k`: local ones win over global ones. */
static const struct pax_rec *pax_get(struct sbx_layer *l, const char *k)
{
        for (size_t i = l->local.n; i-- > 0;)
                if (key_is(&l->local.recs[i], k))
                        return &l->local.recs[i];
        for (size_t i = l->global.n; i-- > 0;)
                if (key_is(&l->global.recs[i], k))
                        return &l->global.recs[i];
        return NULL;
}

/* tarfile's records: "<len> <key>=<value>\n" from the start, until one does not parse (the
 * block's NUL padding). A record of length 0 is an invalid header. `data` is kept by `p`. */
static int pax_parse(struct pax_set *p, char *data, size_t size, const char **why)
{
        size_t pos = 0;
        while (pos < size) {
                size_t i = pos, len = 0;
                while (i < size && data[i] >= '0' && data[i] <= '9') {
                        if (len > size)
                                break;
                        len = len * 10 + (size_t)(data[i] - '0');
                        i++;
                }
                if (i == pos || i >= size || data[i] != ' ')
                        break;
                size_t k = ++i;
                while (i < size && data[i] != '=')
                        i++;
                if (i == k || i >= size)
                        break;
                if (len == 0) {
                        *why = "invalid header";
                        return -1;
                }
                if (len > size - pos)
                        len = size - pos; /* tarfile takes what is there, then stops */
                size_t v = i + 1, end = pos + len;
                size_t vend = end > 0 ? end - 1 : 0;
                if (vend < v)
                        vend = v;
                if (pax_add(p, data + k, i - k, data + v, vend - v) < 0) {
                        *why = "out of memory";
                        return -1;
                }
                pos = end;
        }
        return 0;
}

/* tarfile's int(): surrounding spaces, an optional sign, decimal digits; anything else is 0. */
static long long pax_int(const struct pax_rec *r)
{
        char buf[32];
        if (r->value_len >= sizeof buf)
                return 0;
        memcpy(buf, r->value, r->value_len);
        buf[r->value_len] = 0;
        char *end;
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
        if (errno || *end || end == buf)
                return 0;
        return v;
}

/* ---- directory records ---------------------------------------------------------------------- */

static size_t hash_path(const char *s)
{
        size_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

static int table_grow(struct sbx_layer *l)
{
        size_t cap = l->table_cap ? l->table_cap * 2 : 1024;
        size_t *t = calloc(cap, sizeof *t);
        if (!t)
                return -1;
        for (size_t i = 0; i < l->n_dirs; i++) {
                size_t h = hash_path(l->dirs[i].path) & (cap - 1);
                while (t[h])
                        h = (h + 1) & (cap - 1);
                t[h] = i + 1;
        }
        free(l->table);
        l->table = t;
        l->table_cap = cap;
        return 0;
}

static struct dir_rec *dir_find(struct sbx_layer *l, const char *path)
{
        if (!l->table_cap)
                return NULL;
        size_t h = hash_path(path) & (l->table_cap - 1);
        while (l->table[h]) {
                struct dir_rec *d = &l->dirs[l->table[h] - 1];
                if (strcmp(d->path, path) == 0)
                        return d;
                h = (h + 1) & (l->table_cap - 1);
        }
        return NULL;
}

static int dir_remember(struct sbx_layer *l, const char *path, int depth)
{
        struct dir_rec *d = dir_find(l, path);
        if (!d) {
                if ((l->n_dirs + 1) * 2 > l->table_cap && table_grow(l) < 0)
                        return -1;
                struct dir_rec *dirs = reserve(l->dirs, &l->cap_dirs, l->n_dirs, sizeof *dirs, 64);
                if (!dirs)
                        return -1;
                l->dirs = dirs;
                d = &l->dirs[l->n_dirs];
                memset(d, 0, sizeof *d);
                d->path = strdup(path);
                if (!d->path)
                        return -1;
                size_t h = hash_path(path) & (l->table_cap - 1);
                while (l->table[h])
                        h = (h + 1) & (l->table_cap - 1);
                l->table[h] = ++l->n_dirs;
        }
        size_t n = l->e.name_len < 1024 ? l->e.name_len : 1024;
        char *name = malloc(n ? n : 1);
        if (!name)
                return -1;
        memcpy(name, l->e.name, n);
        free(d->name);
        d->name = name;
        d->name_len = n;
        d->depth = depth;
        d->alive = 1;
        d->mode = l->e.mode;
        d->mtime_ns = l->e.mtime_ns;
        d->mtime_bad = l->e.mtime_bad;
        return 0;
}

/* A removed directory takes its own record and its descendants' with it. */
static void dir_forget(struct sbx_layer *l, const char *path)
{
        size_t n = strlen(path);
        for (size_t i = 0; i < l->n_dirs; i++) {
                const char *p = l->dirs[i].path;
                if (strncmp(p, path, n) == 0 && (p[n] == 0 || p[n] == '/'))
                        l->dirs[i].alive = 0;
        }
}

/* ---- names ---------------------------------------------------------------------------------- */

static int starts(const char *s, size_t n, const char *prefix)
{
        size_t k = strlen(prefix);
        return n >= k && memcmp(s, prefix, k) == 0;
}

/* extract.py's _parts(): `path` split into l->parts (components joined by '/', NUL at the end)
 * and l->part_at; refused (naming the entry) unless it stays beneath. */
static int split(struct sbx_layer *l, struct sbx_layer_res *res, const char *path, size_t len, const char *what)
{
        if (memchr(path, 0, len))
                return fail(l, res, 1, "%s contains a NUL byte", what);
        if (len > MAX_NAME)
                return fail(l, res, 1, "%s longer than %d bytes", what, MAX_NAME);
        if (len && path[0] == '/')
                return fail(l, res, 1, "%s is absolute", what);
        size_t out = 0, i = 0;
        l->n_parts = 0;
        while (i < len) {
                size_t j = i;
                while (j < len && path[j] != '/')
                        j++;
                size_t n = j - i;
                const char *c = path + i;
                i = j + 1;
                if (n == 0 || (n == 1 && c[0] == '.'))
                        continue;
                if (n == 2 && c[0] == '.' && c[1] == '.')
                        return fail(l, res, 1, "%s has a '..' component", what);
                if (n > MAX_COMPONENT)
                        return fail(l, res, 1, "%s has a component longer than %d bytes", what, MAX_COMPONENT);
                if (l->n_parts)
                        l->parts[out++] = '/';
                l->part_at[l->n_parts++] = out;
                memcpy(l->parts + out, c, n);
                out += n;
        }
        l->parts[out] = 0;
        for (int k = 0; k + 1 < l->n_parts; k++) {
                size_t n = l->part_at[k + 1] - 1 - l->part_at[k];
                if (starts(l->parts + l->part_at[k], n, ".wh."))
                        return fail(l, res, 1, "%s has a directory named .wh.*: the prefix marks whiteouts", what);
        }
        return 0;
}

/* ---- walking beneath the root --------------------------------------------------------------- */

static int open_beneath(int dirfd, const char *path)
{
        struct open_how how = { .flags = DIR_FLAGS,
                                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
        return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* A new fd of the directory `parts` (components joined by '/', "" for the root; copied first:
 * it may be l->parts): one openat2 beneath the root without symlinks, or where that fails a walk
 * one component at a time with O_NOFOLLOW, which creates missing ones 0755 when `create`
 * (containerd does the same) and names the component that is not a directory. -1 with errno
 * ENOENT when missing and not `create`; -2 with res filled otherwise. */
static int open_dir(struct sbx_layer *l, struct sbx_layer_res *res, const char *parts, int create)
{
        char path[MAX_NAME + 1];
        size_t len = strlen(parts);
        memcpy(path, parts, len + 1);
        l->op = "open";
        if (len == 0) {
                int fd = fcntl(l->root, F_DUPFD_CLOEXEC, 0);
                return fd < 0 ? (fail_os(l, res, errno), -2) : fd;
        }
        int fd = open_beneath(l->root, path);
        if (fd >= 0)
                return fd;
        l->op = "open";
        fd = openat(l->root, ".", DIR_FLAGS);
        if (fd < 0)
                return fail_os(l, res, errno), -2;
        char *c = path;
        while (c) {
                char *slash = strchr(c, '/');
                if (slash)
                        *slash = 0;
                int step = openat(fd, c, DIR_FLAGS);
                if (step < 0 && errno == ENOENT && create) {
                        l->op = "mkdir";
                        if (mkdirat(fd, c, 0755) == 0) {
                                l->files++;
                        } else if (errno != EEXIST) {
                                int err = errno;
                                close(fd);
                                return fail_os(l, res, err), -2;
                        }
                        step = openat(fd, c, DIR_FLAGS);
                }
                if (step < 0) {
                        int err = errno;
                        close(fd);
                        if (err == ELOOP || err == ENOTDIR) {
                                set_subject(res, path, strlen(path));
                                return fail(l, res, 1, "\"\x01\" is not a directory: nothing is written through a "
                                                       "symlink or a file"), -2;
                        }
                        if (err == ENOENT && !create) {
                                errno = ENOENT;
                                return -1;
                        }
                        return fail_os(l, res, err), -2;
                }
                close(fd);
                fd = step;
                if (slash)
                        *slash = '/';
                c = slash ? slash + 1 : NULL;
        }
        return fd;
}

/* The fd of the entry's parent directory, cached: entries come grouped by directory. */
static int parent_fd(struct sbx_layer *l, struct sbx_layer_res *res)
{
        char parent[MAX_NAME + 1];
        size_t n = l->n_parts > 1 ? l->part_at[l->n_parts - 1] - 1 : 0;
        memcpy(parent, l->parts, n);
        parent[n] = 0;
        if (l->cached_fd >= 0 && strcmp(parent, l->cached_path) == 0)
                return l->cached_fd;
        int fd = open_dir(l, res, parent, 1);
        if (fd < 0)
                return -1;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int err = errno;
                close(fd);
                l->op = "open";
                return fail_os(l, res, err);
        }
        if (l->cached_fd >= 0)
                close(l->cached_fd);
        l->cached_fd = fd;
        l->cached_gid = st.st_gid;
        memcpy(l->cached_path, parent, n + 1);
        return fd;
}

/* Remove the directory `name` below `parent` and everything in it, without recursion (a tree
 * may be thousands of levels deep) and without following a symlink: each step reopens the
 * deepest directory still to empty by its path beneath `parent`. */
static int remove_tree(int parent, const char *name)
{
        char path[MAX_NAME + MAX_COMPONENT + 2];
        size_t top = strlen(name);
        memcpy(path, name, top + 1);
        for (;;) {
                int fd = open_beneath(parent, path);
                if (fd < 0)
                        return -1;
                DIR *d = fdopendir(fd);
                if (!d) {
                        close(fd);
                        return -1;
                }
                int descended = 0;
                struct dirent *ent;
                errno = 0;
                while ((ent = readdir(d))) {
                        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
                                continue;
                        int is_dir = ent->d_type == DT_DIR;
                        if (ent->d_type == DT_UNKNOWN) {
                                struct stat st;
                                is_dir = fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                                         S_ISDIR(st.st_mode);
                        }
                        if (is_dir) {
                                size_t len = strlen(path), n = strlen(ent->d_name);
                                if (len + 1 + n >= sizeof path) {
                                        closedir(d);
                                        errno = ENAMETOOLONG;
                                        return -1;
                                }
                                path[len] = '/';
                                memcpy(path + len + 1, ent->d_name, n + 1);
                                descended = 1;
                                break;
                        }
                        if (unlinkat(dirfd(d), ent->d_name, 0) < 0 && errno != ENOENT) {
                                int err = errno;
                                closedir(d);
                                errno = err;
                                return -1;
                        }
                }
                closedir(d);
                if (descended)
                        continue;
                if (unlinkat(parent, path, AT_REMOVEDIR) < 0)
                        return -1;
                if (strlen(path) == top)
                        return 0;
                *strrchr(path, '/') = 0;
        }
}

/* ---- entries -------------------------------------------------------------------------------- */

static const char *base_name(struct sbx_layer *l)
{
        return l->parts + l->part_at[l->n_parts - 1];
}

static int owned(struct sbx_layer *l, int parent)
{
        return l->e.uid == (long long)l->euid && l->e.gid == (long long)l->egid && parent == l->cached_fd &&
               l->cached_gid == l->egid;
}

static int owner_and_xattrs(struct sbx_layer *l, struct sbx_layer_res *res, int fd, int parent, int made)
{
        const char *base = base_name(l);
        if (!(made && owned(l, parent))) {
                static __thread char op[64];
                snprintf(op, sizeof op, "chown to %lld:%lld", l->e.uid, l->e.gid);
                l->op = op;
                if (l->e.uid >= 0xffffffffLL || l->e.gid >= 0xffffffffLL)
                        return fail(l, res, 1, "%s: owner out of range", op);
                int r = fd >= 0 ? fchown(fd, (uid_t)l->e.uid, (gid_t)l->e.gid)
                                : fchownat(parent, base, (uid_t)l->e.uid, (gid_t)l->e.gid, AT_SYMLINK_NOFOLLOW);
                if (r < 0)
                        return fail_os(l, res, errno);
        }
        for (int i = 0; i < l->e.n_xattrs; i++) {
                const struct pax_rec *x = l->e.xattrs[i];
                static __thread char attr[MAX_COMPONENT + 1], op[MAX_COMPONENT + 16];
                size_t n = x->key_len - 13; /* "SCHILY.xattr." */
                memcpy(attr, x->key + 13, n);
                attr[n] = 0;
                snprintf(op, sizeof op, "set xattr %s", attr);
                l->op = op;
                int r;
                if (fd >= 0) {
                        r = fsetxattr(fd, attr, x->value, x->value_len, 0);
                } else { /* a symlink or node: its verified parent's fd, the last component not followed */
                        char proc[64 + MAX_COMPONENT];
                        snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", parent, base);
                        r = lsetxattr(proc, attr, x->value, x->value_len, 0);
                }
                if (r < 0)
                        return fail_os(l, res, errno);
        }
        return 0;
}

static int set_times(struct sbx_layer *l, struct sbx_layer_res *res, int fd, int parent, long long ns)
{
        l->op = "set times";
        if (l->e.mtime_bad)
                return fail(l, res, 1, "set times: mtime out of range");
        struct timespec ts[2] = { { ns / 1000000000LL, ns % 1000000000LL } };
        if (ts[0].tv_nsec < 0) {
                ts[0].tv_nsec += 1000000000LL;
                ts[0].tv_sec -= 1;
        }
        ts[1] = ts[0];
        int r = fd >= 0 ? futimens(fd, ts) : utimensat(parent, base_name(l), ts, AT_SYMLINK_NOFOLLOW);
        return r < 0 ? fail_os(l, res, errno) : 0;
}

static int attributes(struct sbx_layer *l, struct sbx_layer_res *res, int fd, int parent)
{
        if (owner_and_xattrs(l, res, fd, parent, 1) < 0)
                return -1;
        l->op = "chmod";
        if (fd >= 0) {
                if (fchmod(fd, l->e.mode & 07777) < 0)
                        return fail_os(l, res, errno);
        } else if (l->e.type != '2' && fchmodat(parent, base_name(l), l->e.mode & 07777, 0) < 0) {
                return fail_os(l, res, errno); /* a node just made here, not a link */
        }
        return set_times(l, res, fd, parent, l->e.mtime_ns);
}

static int is_reg(char t)
{
        return t == '0' || t == 0 || t == '7' || t == 'S';
}

static int lstat_at(int dirfd, const char *name, struct stat *st)
{
        if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0)
                return 1;
        return errno == ENOENT ? 0 : -1;
}

static int remove_existing(struct sbx_layer *l, struct sbx_layer_res *res, int parent, const struct stat *st)
{
        l->op = "replace";
        const char *base = base_name(l);
        if (!S_ISDIR(st->st_mode))
                return unlinkat(parent, base, 0) < 0 ? fail_os(l, res, errno) : 0;
        if (remove_tree(parent, base) < 0)
                return fail_os(l, res, errno);
        dir_forget(l, l->parts);
        return 0;
}

static int make_directory(struct sbx_layer *l, struct sbx_layer_res *res, int parent, int create, int opaque)
{
        const char *base = base_name(l);
        l->op = "mkdir";
        if (create && mkdirat(parent, base, 0700) < 0) /* its mode comes last (finish) */
                return errno == EEXIST ? 1 : fail_os(l, res, errno);
        int fd = openat(parent, base, DIR_FLAGS);
        if (fd < 0)
                return fail_os(l, res, errno);
        int r = owner_and_xattrs(l, res, fd, parent, create);
        if (r == 0 && opaque && fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
                r = fail_os(l, res, errno);
        close(fd);
        if (r == 0 && dir_remember(l, l->parts, l->n_parts) < 0)
                r = fail(l, res, 1, "out of memory");
        return r;
}

/* The entry made at a free name (a directory also merged into an existing one): 1 when the
 * name is taken (nothing written), 0 when made, -1 on an error. A regular file is left open
 * in l->fd for its data. */
static int make(struct sbx_layer *l, struct sbx_layer_res *res, int parent, int create, int opaque)
{
        const char *base = base_name(l);
        char t = l->e.type;
        if (t == '5')
                return make_directory(l, res, parent, create, opaque);
        if (is_reg(t)) {
                l->op = "create";
                int fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0)
                        return errno == EEXIST ? 1 : fail_os(l, res, errno);
                l->fd = fd;
                l->remaining = l->e.size;
                return 0;
        }
        if (t == '2') {
                char target[MAX_LINK_TARGET + 1];
                memcpy(target, l->e.link, l->e.link_len);
                target[l->e.link_len] = 0;
                l->op = "symlink";
                if (symlinkat(target, parent, base) < 0)
                        return errno == EEXIST ? 1 : fail_os(l, res, errno);
                return attributes(l, res, -1, parent);
        }
        l->op = "mknod";
        int r;
        if (t == '6') {
                r = mkfifoat(parent, base, 0600);
        } else {
                if (l->e.devmajor < 0 || l->e.devmajor > 0xfffff || l->e.devminor < 0 || l->e.devminor > 0xfffff)
                        return fail(l, res, 1, "mknod: device number out of range");
                mode_t kind = t == '3' ? S_IFCHR : S_IFBLK;
                r = mknodat(parent, base, kind | 0600,
                            makedev((unsigned)l->e.devmajor, (unsigned)l->e.devminor));
        }
        if (r < 0)
                return errno == EEXIST ? 1 : fail_os(l, res, errno);
        return attributes(l, res, -1, parent);
}

static int is_whiteout(const struct stat *st)
{
        return S_ISCHR(st->st_mode) && st->st_rdev == 0;
}

static int entry(struct sbx_layer *l, struct sbx_layer_res *res, int parent)
{
        l->files++;
        int r = make(l, res, parent, 1, 0);
        if (r <= 0)
                return r;
        struct stat st;
        l->op = "create";
        int found = lstat_at(parent, base_name(l), &st);
        if (found < 0)
                return fail_os(l, res, errno);
        int merge = found && l->e.type == '5' && S_ISDIR(st.st_mode);
        int opaque = 0;
        if (found && !merge) {
                /* a whiteout of this layer then the same name as a directory: OCI hides the
                 * lower layers' directory and keeps this one, which overlayfs spells as opaque */
                opaque = l->e.type == '5' && is_whiteout(&st);
                if (remove_existing(l, res, parent, &st) < 0)
                        return -1;
        }
        r = make(l, res, parent, !merge, opaque);
        if (r == 1) {
                l->op = "create";
                return fail_os(l, res, EEXIST);
        }
        return r;
}

static int mark_opaque(struct sbx_layer *l, struct sbx_layer_res *res, int parent, const char *name)
{
        l->op = "mark opaque";
        int fd = openat(parent, name, DIR_FLAGS);
        if (fd < 0)
                return fail_os(l, res, errno);
        int r = fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0);
        int err = errno;
        close(fd);
        return r < 0 ? fail_os(l, res, err) : 0;
}

static int whiteout(struct sbx_layer *l, struct sbx_layer_res *res, int parent)
{
        const char *base = base_name(l);
        if (strcmp(base, ".wh..wh..opq") == 0) {
                l->op = "mark opaque";
                return fsetxattr(parent, "trusted.overlay.opaque", "y", 1, 0) < 0 ? fail_os(l, res, errno) : 0;
        }
        if (strncmp(base, ".wh..wh.", 8) == 0)
                return 0; /* reserved by the spec: ignored, as containerd does */
        const char *hidden = base + 4;
        if (!strcmp(hidden, "") || !strcmp(hidden, ".") || !strcmp(hidden, ".."))
                return fail(l, res, 1, "a whiteout of its own directory or of the parent");
        struct stat st;
        l->op = "mknod whiteout";
        int found = lstat_at(parent, hidden, &st);
        if (found < 0)
                return fail_os(l, res, errno);
        if (!found) {
                if (mknodat(parent, hidden, S_IFCHR, 0) < 0)
                        return fail_os(l, res, errno);
                l->files++;
        } else if (S_ISDIR(st.st_mode)) {
                return mark_opaque(l, res, parent, hidden);
        }
        return 0;
}

static int hard_link(struct sbx_layer *l, struct sbx_layer_res *res, int parent)
{
        char name[MAX_NAME + 1];
        memcpy(name, l->parts, strlen(l->parts) + 1);
        if (split(l, res, l->e.link, l->e.link_len, "hard link target") < 0)
                return -1;
        char target[MAX_NAME + 1], target_dir[MAX_NAME + 1], target_base[MAX_COMPONENT + 1];
        memcpy(target, l->parts, strlen(l->parts) + 1);
        int n_target = l->n_parts;
        size_t dir_len = n_target > 1 ? l->part_at[n_target - 1] - 1 : 0;
        if (n_target)
                strcpy(target_base, l->parts + l->part_at[n_target - 1]);
        memcpy(target_dir, l->parts, dir_len);
        target_dir[dir_len] = 0;
        /* back to the entry's own name for base_name() and messages */
        if (split(l, res, name, strlen(name), "name") < 0)
                return -1;
        if (!n_target)
                return fail(l, res, 1, "a hard link to the root");
        if (strcmp(target, name) == 0)
                return 0; /* a link to itself: the name already is that file */
        set_subject(res, l->e.link, l->e.link_len);
        int src = open_dir(l, res, target_dir, 0);
        if (src == -1)
                return fail(l, res, 1, "hard link target \"\x01\" is not an earlier entry of this layer");
        if (src < 0)
                return -1;
        struct stat sst, dst;
        int r = -1;
        int found = lstat_at(src, target_base, &sst);
        l->op = "link";
        if (found < 0) {
                fail_os(l, res, errno);
        } else if (!found) {
                fail(l, res, 1, "hard link target \"\x01\" is not an earlier entry of this layer");
        } else if (!S_ISREG(sst.st_mode)) {
                fail(l, res, 1, "hard link target \"\x01\" is not a regular file");
        } else {
                int there = lstat_at(parent, base_name(l), &dst);
                if (there < 0) {
                        fail_os(l, res, errno);
                } else if (there && dst.st_dev == sst.st_dev && dst.st_ino == sst.st_ino) {
                        r = 0;
                } else if (there && remove_existing(l, res, parent, &dst) < 0) {
                        r = -1;
                } else {
                        l->op = "link";
                        if (linkat(src, target_base, parent, base_name(l), 0) < 0) {
                                fail_os(l, res, errno);
                        } else {
                                l->files++;
                                r = 0;
                        }
                }
        }
        close(src);
        return r;
}

static int check_kind(struct sbx_layer *l, struct sbx_layer_res *res)
{
        char t = l->e.type;
        if ((t == '3' || t == '4') && !(l->flags & SBX_LAYER_DEVICES))
                return fail(l, res, 1, "%s device %lld:%lld refused (devices not allowed)",
                            t == '3' ? "character" : "block", l->e.devmajor, l->e.devminor);
        if (!(is_reg(t) || t == '5' || t == '2' || t == '1' || t == '3' || t == '4' || t == '6')) {
                if (t >= 0x20 && t < 0x7f && t != '\'' && t != '\\')
                        return fail(l, res, 1, "unsupported entry type b'%c'", t);
                return fail(l, res, 1, "unsupported entry type b'\\x%02x'", (unsigned char)t);
        }
        if (l->e.sparse || t == 'S')
                return fail(l, res, 1, "sparse files are not supported");
        if (l->e.uid < 0 || l->e.gid < 0) /* base-256 fields can say -1, which chown reads as "unchanged" */
                return fail(l, res, 1, "negative owner %lld:%lld", l->e.uid, l->e.gid);
        if (t == '2') {
                if (memchr(l->e.link, 0, l->e.link_len))
                        return fail(l, res, 1, "symlink target contains a NUL byte");
                if (!l->e.link_len || l->e.link_len > MAX_LINK_TARGET)
                        return fail(l, res, 1, "symlink target empty or longer than %d bytes", MAX_LINK_TARGET);
        }
        return 0;
}

static int write_entry(struct sbx_layer *l, struct sbx_layer_res *res)
{
        if (split(l, res, l->e.name, l->e.name_len, "name") < 0)
                return -1;
        if (!l->n_parts)
                return 0; /* the root entry: skipped, as containerd skips entries resolving to it */
        int white = starts(base_name(l), strlen(base_name(l)), ".wh.");
        if (!white && check_kind(l, res) < 0)
                return -1;
        int parent = parent_fd(l, res);
        if (parent < 0)
                return -1;
        if (white)
                return whiteout(l, res, parent);
        if (l->e.type == '1')
                return hard_link(l, res, parent);
        return entry(l, res, parent);
}

static void clear_pending(struct sbx_layer *l)
{
        pax_clear(&l->local);
        free(l->longname);
        free(l->longlink);
        l->longname = l->longlink = NULL;
        l->pending = 0;
}

static int finish_file(struct sbx_layer *l, struct sbx_layer_res *res)
{
        int r = attributes(l, res, l->fd, l->cached_fd);
        close(l->fd);
        l->fd = -1;
        l->bytes += l->e.size;
        clear_pending(l); /* the entry's name and xattrs lived in its extended headers */
        return r;
}

/* ---- headers -------------------------------------------------------------------------------- */

static int corrupt(struct sbx_layer *l, struct sbx_layer_res *res, const char *why)
{
        if (l->first)
                return fail(l, res, 0, "not a tar archive: %s", why);
        return fail(l, res, 0, "truncated or corrupt archive at byte %lld: %s", l->header_at, why);
}

static double pax_float(const struct pax_rec *r, int *bad)
{
        char buf[64];
        if (r->value_len >= sizeof buf) {
                return 0;
        }
        memcpy(buf, r->value, r->value_len);
        buf[r->value_len] = 0;
        char *end;
        double v = strtod(buf, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
        if (*end || end == buf)
                return 0; /* tarfile: a value float() refuses becomes 0 */
        if (!(v > -9.2e9 && v < 9.2e9)) /* NaN too: utimensat takes nanoseconds in 64 bits */
                *bad = 1;
        return v;
}

/* The entry of the header in l->hdr with the pending extended headers applied (tarfile's
 * frombuf, _proc_builtin and _apply_pax_info). */
static int build_entry(struct sbx_layer *l, struct sbx_layer_res *res)
{
        const unsigned char *b = l->hdr;
        struct entry *e = &l->e;
        long long mode, mtime;
        memset(e, 0, sizeof *e);
        if (number(b + 100, 8, &mode) < 0 || number(b + 108, 8, &e->uid) < 0 || number(b + 116, 8, &e->gid) < 0 ||
            number(b + 124, 12, &e->size) < 0 || number(b + 136, 12, &mtime) < 0 ||
            number(b + 329, 8, &e->devmajor) < 0 || number(b + 337, 8, &e->devminor) < 0)
                return corrupt(l, res, "invalid header");
        e->type = (char)b[156];
        e->mode = (unsigned)mode;
        size_t nlen = cstrlen(b, 100), plen = cstrlen(b + 345, 155);
        char *name = l->ustar_name;
        size_t len = 0;
        if (plen && e->type != 'L' && e->type != 'K' && e->type != 'S') {
                memcpy(name, b + 345, plen);
                name[plen] = '/';
                len = plen + 1;
        }
        memcpy(name + len, b, nlen);
        len += nlen;
        if (e->type == 0 && nlen && b[nlen - 1] == '/')
                e->type = '5'; /* old V7 tar: a directory is a regular file with a trailing slash */
        e->name = name;
        e->name_len = len;
        size_t llen = cstrlen(b + 157, 100);
        memcpy(l->ustar_link, b + 157, llen);
        e->link = l->ustar_link;
        e->link_len = llen;
        if (l->longname) {
                e->name = l->longname;
                e->name_len = l->longname_len;
                if (e->type == '5' && e->name_len && e->name[e->name_len - 1] == '/')
                        e->name_len--;
        }
        if (l->longlink) {
                e->link = l->longlink;
                e->link_len = l->longlink_len;
        }
        const struct pax_rec *r;
        if ((r = pax_get(l, "path"))) {
                e->name = r->value;
                e->name_len = r->value_len;
                while (e->name_len && e->name[e->name_len - 1] == '/')
                        e->name_len--;
        }
        if ((r = pax_get(l, "linkpath"))) {
                e->link = r->value;
                e->link_len = r->value_len;
        }
        if ((r = pax_get(l, "size")))
                e->size = pax_int(r);
        if ((r = pax_get(l, "uid")))
                e->uid = pax_int(r);
        if ((r = pax_get(l, "gid")))
                e->gid = pax_int(r);
        if (e->size < 0)
                return corrupt(l, res, "invalid header");
        if ((r = pax_get(l, "mtime"))) {
                double v = pax_float(r, &e->mtime_bad);
                e->mtime_ns = e->mtime_bad ? 0 : (long long)(v * 1e9 + (v < 0 ? -0.5 : 0.5));
        } else if (mtime > 9200000000LL || mtime < -9200000000LL) {
                e->mtime_bad = 1;
        } else {
                e->mtime_ns = mtime * 1000000000LL;
        }
        if (e->type == '5')
                while (e->name_len && e->name[e->name_len - 1] == '/')
                        e->name_len--;
        /* xattrs, global then local, a later record of one name replacing an earlier one */
        for (int pass = 0; pass < 2; pass++) {
                struct pax_set *p = pass ? &l->local : &l->global;
                for (size_t i = 0; i < p->n; i++) {
                        struct pax_rec *x = &p->recs[i];
                        if (key_starts(x, "GNU.sparse."))
                                e->sparse = 1;
                        if (!key_starts(x, "SCHILY.xattr."))
                                continue;
                        int k;
                        for (k = 0; k < e->n_xattrs; k++)
                                if (e->xattrs[k]->key_len == x->key_len &&
                                    !memcmp(e->xattrs[k]->key, x->key, x->key_len))
                                        break;
                        if (k == e->n_xattrs && e->n_xattrs == MAX_XATTRS)
                                return fail(l, res, 1, "more than %d xattrs", MAX_XATTRS);
                        e->xattrs[k] = x;
                        if (k == e->n_xattrs)
                                e->n_xattrs++;
                }
        }
        return 0;
}

static int check_xattrs(struct sbx_layer *l, struct sbx_layer_res *res)
{
        for (int i = 0; i < l->e.n_xattrs; i++) {
                const struct pax_rec *x = l->e.xattrs[i];
                const char *a = x->key + 13;
                size_t n = x->key_len - 13;
                if (!n || memchr(a, 0, n))
                        return fail(l, res, 1, "an xattr name empty or with a NUL byte");
                if (n > MAX_COMPONENT)
                        return fail(l, res, 1, "xattr name longer than %d bytes", MAX_COMPONENT);
                if (starts(a, n, "trusted.overlay.") || starts(a, n, "user.overlay."))
                        return fail(l, res, 1, "xattr %.*s is overlayfs's own: a layer may not set it", (int)n, a);
        }
        return 0;
}


static int extended(struct sbx_layer *l, struct sbx_layer_res *res);

static int header(struct sbx_layer *l, struct sbx_layer_res *res)
{
        l->header_at = l->offset - BLOCK;
        if (all_zero(l->hdr, BLOCK)) {
                if (l->pending) /* tarfile: an extended header must be followed by its entry */
                        return corrupt(l, res, "end of file header");
                l->st = END;
                return 0;
        }
        if (!checksum_ok(l->hdr))
                return corrupt(l, res, "bad checksum");
        char t = (char)l->hdr[156];
        if (t == 'x' || t == 'g' || t == 'X' || t == 'L' || t == 'K') {
                long long size;
                if (number(l->hdr + 124, 12, &size) < 0 || size < 0)
                        return corrupt(l, res, "invalid header");
                if (size > MAX_EXTENDED)
                        return fail(l, res, 0, "extended header of %lld bytes (limit %d)", size, MAX_EXTENDED);
                l->ext_type = t;
                l->ext_size = (size_t)size;
                l->ext_need = ((size_t)size + BLOCK - 1) / BLOCK * BLOCK;
                l->ext_len = 0;
                l->ext = malloc(l->ext_need + 1);
                if (!l->ext)
                        return fail(l, res, 0, "out of memory");
                l->st = EXTENDED;
                l->first = 0;
                l->pending = 1;
                return l->ext_need ? 0 : extended(l, res);
        }
        if (build_entry(l, res) < 0)
                return -1;
        l->first = 0;
        long long size = l->e.size;
        int supported = is_reg(l->e.type) || (l->e.type && strchr("123456", l->e.type));
        int has_data = is_reg(l->e.type) || !supported;
        int r = check_xattrs(l, res);
        if (r == 0)
                r = write_entry(l, res);
        if (r < 0)
                return -1;
        if (l->fd < 0)
                clear_pending(l); /* else when the file's data is written (finish_file) */
        if (l->fd >= 0) {
                if (size == 0 && finish_file(l, res) < 0)
                        return -1;
                l->st = l->fd >= 0 ? DATA : HEADER;
        } else {
                l->st = HEADER;
        }
        long long pad = has_data ? (BLOCK - size % BLOCK) % BLOCK : 0;
        if (l->st == DATA) {
                l->skip = pad;
        } else {
                l->skip = has_data ? size + pad : 0;
                if (l->skip)
                        l->st = SKIP;
        }
        return 0;
}

static int digit_run(const unsigned char *p, size_t n)
{
        size_t run = 0;
        for (size_t i = 0; i < n; i++) {
                run = p[i] >= '0' && p[i] <= '9' ? run + 1 : 0;
                if (run > MAX_DIGIT_RUN)
                        return 1;
        }
        return 0;
}

static int extended(struct sbx_layer *l, struct sbx_layer_res *res)
{
        unsigned char *data = l->ext;
        l->ext = NULL;
        data[l->ext_need] = 0;
        l->st = HEADER;
        if (l->ext_type == 'L' || l->ext_type == 'K') {
                size_t n = cstrlen(data, l->ext_need);
                if (l->ext_type == 'L') {
                        free(l->longname);
                        l->longname = (char *)data;
                        l->longname_len = n;
                } else {
                        free(l->longlink);
                        l->longlink = (char *)data;
                        l->longlink_len = n;
                }
                return 0;
        }
        if (digit_run(data, l->ext_need)) {
                free(data);
                return fail(l, res, 0, "PAX header with a run of over %d digits", MAX_DIGIT_RUN);
        }
        const char *why = NULL;
        if (l->ext_type == 'g') {
                if (l->global.len + l->ext_need > MAX_GLOBAL) {
                        free(data);
                        return fail(l, res, 0, "global extended headers over %d bytes", MAX_GLOBAL);
                }
                /* kept to the end: the records of every global header point into its bytes */
                char **bufs = realloc(l->global_bufs, (l->n_global_bufs + 1) * sizeof *bufs);
                if (!bufs) {
                        free(data);
                        return fail(l, res, 0, "out of memory");
                }
                l->global_bufs = bufs;
                bufs[l->n_global_bufs++] = (char *)data;
                l->global.len += l->ext_need;
                if (pax_parse(&l->global, (char *)data, l->ext_need, &why) < 0)
                        return corrupt(l, res, why);
                return 0;
        }
        pax_clear(&l->local);
        l->local.buf = (char *)data;
        if (pax_parse(&l->local, (char *)data, l->ext_need, &why) < 0)
                return corrupt(l, res, why);
        return 0;
}

/* ---- the tar stream ------------------------------------------------------------------------- */

static int tar(struct sbx_layer *l, struct sbx_layer_res *res, const unsigned char *p, size_t n)
{
        while (n) {
                size_t take;
                switch (l->st) {
                case HEADER:
                        take = BLOCK - l->have < n ? BLOCK - l->have : n;
                        memcpy(l->hdr + l->have, p, take);
                        l->have += take;
                        l->offset += (long long)take;
                        if (l->have == BLOCK) {
                                l->have = 0;
                                if (header(l, res) < 0)
                                        return -1;
                        }
                        break;
                case EXTENDED:
                        take = l->ext_need - l->ext_len < n ? l->ext_need - l->ext_len : n;
                        memcpy(l->ext + l->ext_len, p, take);
                        l->ext_len += take;
                        l->offset += (long long)take;
                        if (l->ext_len == l->ext_need && extended(l, res) < 0)
                                return -1;
                        break;
                case DATA:
                        take = (unsigned long long)l->remaining < n ? (size_t)l->remaining : n;
                        l->op = "write";
                        if (write_all(l->fd, p, take) < 0)
                                return fail_os(l, res, errno);
                        l->remaining -= (long long)take;
                        l->offset += (long long)take;
                        if (!l->remaining) {
                                if (finish_file(l, res) < 0)
                                        return -1;
                                l->st = l->skip ? SKIP : HEADER;
                        }
                        break;
                case SKIP:
                        take = (unsigned long long)l->skip < n ? (size_t)l->skip : n;
                        l->skip -= (long long)take;
                        l->offset += (long long)take;
                        if (!l->skip)
                                l->st = HEADER;
                        break;
                default:
                        return 0; /* after the end blocks: hashed, not read */
                }
                p += take;
                n -= take;
        }
        return 0;
}

static int hash(struct sbx_layer *l, struct sbx_layer_res *res, const unsigned char *p, size_t n)
{
        if (n && !dl.update(l->md, p, n))
                return fail(l, res, 0, "sha256 failed");
        return 0;
}

static int gunzip(struct sbx_layer *l, struct sbx_layer_res *res, const unsigned char *p, size_t n)
{
        while (n) {
                if (l->member_done) { /* zeros between or after members are padding (gzip(1)) */
                        while (n && *p == 0) {
                                p++;
                                n--;
                        }
                        if (!n)
                                return 0;
                        if (dl.inflate_reset(&l->z) != Z_OK)
                                return fail(l, res, 0, "cannot read the layer stream: inflateReset failed");
                        l->member_done = 0;
                }
                l->z.next_in = (unsigned char *)p;
                l->z.avail_in = n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
                size_t given = l->z.avail_in;
                int ret;
                do {
                        l->z.next_out = l->out;
                        l->z.avail_out = INFLATE_OUT;
                        ret = dl.inflate(&l->z, Z_NO_FLUSH);
                        if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR)
                                return fail(l, res, 0, "cannot read the layer stream: %s",
                                            l->z.msg ? l->z.msg : "invalid deflate data");
                        size_t out = INFLATE_OUT - l->z.avail_out;
                        if (hash(l, res, l->out, out) < 0 || tar(l, res, l->out, out) < 0)
                                return -1;
                } while (ret == Z_OK && (l->z.avail_in || !l->z.avail_out));
                size_t used = given - l->z.avail_in;
                p += used;
                n -= used;
                if (ret == Z_STREAM_END)
                        l->member_done = 1;
                else if (ret == Z_BUF_ERROR && l->z.avail_in)
                        return fail(l, res, 0, "cannot read the layer stream: inflate made no progress");
        }
        return 0;
}

#ifdef HAVE_ISAL
static const char *isal_error(int ret)
{
        switch (ret) { /* zlib's words for the same faults */
        case ISAL_INVALID_BLOCK:
                return "invalid block type or lengths";
        case ISAL_INVALID_SYMBOL:
                return "invalid code";
        case ISAL_INVALID_LOOKBACK:
                return "invalid distance too far back";
        case ISAL_INVALID_WRAPPER:
                return "incorrect header check";
        case ISAL_UNSUPPORTED_METHOD:
                return "unknown compression method";
        case ISAL_INCORRECT_CHECKSUM:
                return "incorrect data check";
        default:
                return "invalid deflate data";
        }
}

enum { GZ_FIXED, GZ_XLEN, GZ_EXTRA, GZ_NAME, GZ_COMMENT, GZ_HCRC, GZ_BODY };

/* One member's header (RFC 1952), read here: isa-l's own reader (ISAL_GZIP) forgets the header's
 * flags when the header is split between two calls and then takes a file name for deflate data.
 * The same checks as zlib's; the header's CRC-16 is skipped, as zlib does with inflateValidate(0).
 * Returns the bytes of `p` it took; l->gz_state is GZ_BODY once the header ended. */
static long gzip_header(struct sbx_layer *l, struct sbx_layer_res *res, const unsigned char *p, size_t n)
{
        size_t i = 0;
        while (i < n && l->gz_state != GZ_BODY) {
                switch (l->gz_state) {
                case GZ_FIXED: /* ID1 ID2 CM FLG MTIME(4) XFL OS */
                case GZ_XLEN: {
                        size_t want = l->gz_state == GZ_FIXED ? 10 : 12, take = want - l->gz_have;
                        take = take < n - i ? take : n - i;
                        for (size_t k = 0; k < take; k++) {
                                if (l->gz_have < 10)
                                        l->gz_fixed[l->gz_have] = p[i + k];
                                else /* XLEN, little-endian */
                                        l->gz_skip |= (size_t)p[i + k] << (8 * (l->gz_have - 10));
                                l->gz_have++;
                        }
                        i += take;
                        /* checked as soon as there, as zlib does: junk after a member is
                         * refused even when shorter than a header */
                        if (l->gz_have >= 2 && (l->gz_fixed[0] != 0x1f || l->gz_fixed[1] != 0x8b))
                                return fail(l, res, 0, "cannot read the layer stream: incorrect header check");
                        if (l->gz_have >= 3 && l->gz_fixed[2] != 8)
                                return fail(l, res, 0, "cannot read the layer stream: unknown compression method");
                        if (l->gz_have >= 4 && (l->gz_fixed[3] & 0xe0))
                                return fail(l, res, 0, "cannot read the layer stream: unknown header flags set");
                        if (l->gz_have < want)
                                break;
                        if (l->gz_state == GZ_XLEN) {
                                l->gz_state = GZ_EXTRA;
                                break;
                        }
                        l->gz_flags = l->gz_fixed[3];
                        l->gz_skip = 0;
                        l->gz_state = (l->gz_flags & 4) ? GZ_XLEN : GZ_NAME;
                        break;
                }
                case GZ_EXTRA: /* then GZ_NAME; GZ_HCRC then GZ_BODY: gz_skip bytes each */
                case GZ_HCRC: {
                        size_t take = l->gz_skip < n - i ? l->gz_skip : n - i;
                        i += take;
                        l->gz_skip -= take;
                        if (!l->gz_skip)
                                l->gz_state = l->gz_state == GZ_EXTRA ? GZ_NAME : GZ_BODY;
                        break;
                }
                case GZ_NAME: /* then GZ_COMMENT: each a NUL-terminated string, if flagged */
                case GZ_COMMENT:
                        if (l->gz_flags & (l->gz_state == GZ_NAME ? 8 : 16)) {
                                const unsigned char *nul = memchr(p + i, 0, n - i);
                                if (!nul) {
                                        i = n;
                                        break;
                                }
                                i = (size_t)(nul - p) + 1;
                        }
                        if (l->gz_state == GZ_COMMENT) {
                                l->gz_skip = (l->gz_flags & 2) ? 2 : 0;
                                l->gz_state = l->gz_skip ? GZ_HCRC : GZ_BODY;
                        } else {
                                l->gz_state = GZ_COMMENT;
                        }
                        break;
                }
        }
        if (l->gz_state == GZ_BODY) { /* the deflate data, then the trailer: isa-l's */
                dl.isal_reset(l->isal);
                l->isal->crc_flag = ISAL_GZIP_NO_HDR_VER;
        }
        return (long)i;
}

/* gunzip() through isa-l: the header here, the deflate data and the 8-byte trailer by isa-l
 * (ISAL_GZIP_NO_HDR_VER), which leaves next_in just past the trailer, so what follows a member
 * is handled as with zlib: zeros are padding, anything else must be the next member's header.
 * isa-l checks the trailer's CRC-32 and length; a mismatch is let through as zlib's
 * inflateValidate(0) lets it (the diff_id decides). */
static int gunzip_isal(struct sbx_layer *l, struct sbx_layer_res *res, const unsigned char *p, size_t n)
{
        struct inflate_state *s = l->isal;
        while (n) {
                if (l->member_done) {
                        while (n && *p == 0) {
                                p++;
                                n--;
                        }
                        if (!n)
                                return 0;
                        l->member_done = 0;
                        l->gz_state = GZ_FIXED;
                        l->gz_have = 0;
                }
                if (l->gz_state != GZ_BODY) {
                        long took = gzip_header(l, res, p, n);
                        if (took < 0)
                                return -1;
                        p += took;
                        n -= (size_t)took;
                        if (!n)
                                return 0;
                }
                s->next_in = (uint8_t *)p;
                s->avail_in = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
                size_t given = s->avail_in;
                for (;;) {
                        uint32_t in_before = s->avail_in;
                        s->next_out = l->out;
                        s->avail_out = INFLATE_OUT;
                        int ret = dl.isal_inflate(s);
                        if (ret == ISAL_INCORRECT_CHECKSUM && s->block_state == ISAL_BLOCK_FINISH)
                                ret = ISAL_DECOMP_OK; /* the trailer's CRC-32 or length */
                        if (ret != ISAL_DECOMP_OK)
                                return fail(l, res, 0, "cannot read the layer stream: %s", isal_error(ret));
                        size_t out = INFLATE_OUT - s->avail_out;
                        if (hash(l, res, l->out, out) < 0 || tar(l, res, l->out, out) < 0)
                                return -1;
                        if (s->block_state == ISAL_BLOCK_FINISH || (!s->avail_in && s->avail_out))
                                break;
                        if (!out && s->avail_in == in_before)
                                return fail(l, res, 0, "cannot read the layer stream: inflate made no progress");
                }
                size_t used = given - s->avail_in;
                p += used;
                n -= used;
                if (s->block_state == ISAL_BLOCK_FINISH)
                        l->member_done = 1;
        }
        return 0;
}
#endif

/* ---- API ------------------------------------------------------------------------------------ */

int sbx_layer_supported(void)
{
        pthread_once(&dl_once, load_libraries);
        return dl.ok;
}

int sbx_layer_isal(void)
{
        pthread_once(&dl_once, load_libraries);
#ifdef HAVE_ISAL
        return dl.isal;
#else
        return 0;
#endif
}

struct sbx_layer *sbx_layer_new(int root_fd, int flags, struct sbx_layer_res *res)
{
        memset(res, 0, sizeof *res);
        pthread_once(&dl_once, load_libraries);
        if (!dl.ok) {
                snprintf(res->detail, sizeof res->detail, "zlib or libcrypto not found: %s", dlerror());
                return NULL;
        }
        struct sbx_layer *l = calloc(1, sizeof *l);
        if (!l)
                return NULL;
        l->root = root_fd;
        l->flags = flags;
        l->fd = -1;
        l->cached_fd = -1;
        l->first = 1;
        l->euid = geteuid();
        l->egid = getegid();
        l->md = dl.ctx_new();
        l->out = malloc(INFLATE_OUT);
        if (!l->md || !l->out || !dl.init(l->md, dl.sha256(), NULL)) {
                sbx_layer_free(l);
                snprintf(res->detail, sizeof res->detail, "out of memory");
                return NULL;
        }
#ifdef HAVE_ISAL
        if ((flags & SBX_LAYER_GZIP) && dl.isal && !(flags & SBX_LAYER_ZLIB)) {
                l->isal = malloc(sizeof *l->isal); /* ~100 KiB: its window and Huffman tables */
                if (!l->isal) {
                        sbx_layer_free(l);
                        snprintf(res->detail, sizeof res->detail, "out of memory");
                        return NULL;
                }
                dl.isal_init(l->isal);
                l->gz_state = GZ_FIXED;
                return l;
        }
#endif
        if (flags & SBX_LAYER_GZIP) {
                if (dl.inflate_init(&l->z, 16 + MAX_WBITS, ZLIB_VERSION, (int)sizeof(z_stream)) != Z_OK) {
                        sbx_layer_free(l);
                        snprintf(res->detail, sizeof res->detail, "inflateInit2 failed");
                        return NULL;
                }
                l->z_live = 1;
                /* No CRC-32 (10-15% of a layer's CPU with zlib 1.2.13's): the SHA-256 of the
                 * whole uncompressed stream, the diff_id, is checked before the layer is used,
                 * and the blob's own digest before that. inflateReset keeps this setting. */
                dl.inflate_validate(&l->z, 0);
        }
        return l;
}

int sbx_layer_feed(struct sbx_layer *l, const unsigned char *data, size_t len, struct sbx_layer_res *res)
{
        if (l->failed)
                return fail(l, res, 0, "the layer failed already");
#ifdef HAVE_ISAL
        if (l->isal)
                return gunzip_isal(l, res, data, len);
#endif
        if (l->flags & SBX_LAYER_GZIP)
                return gunzip(l, res, data, len);
        if (hash(l, res, data, len) < 0)
                return -1;
        return tar(l, res, data, len);
}

static __thread const struct dir_rec *sort_dirs;

static int deeper_first(const void *a, const void *b)
{
        size_t i = *(const size_t *)a, j = *(const size_t *)b;
        int di = sort_dirs[i].depth, dj = sort_dirs[j].depth;
        if (di != dj)
                return di > dj ? -1 : 1;
        return i < j ? -1 : i > j;
}

static int finish_directories(struct sbx_layer *l, struct sbx_layer_res *res)
{
        /* deepest first: writing a child changes its parent's mtime, and a mode without write or
         * search permission would stop a non-root caller */
        size_t *order = malloc((l->n_dirs ? l->n_dirs : 1) * sizeof *order), n = 0;
        if (!order)
                return fail(l, res, 0, "out of memory");
        for (size_t i = 0; i < l->n_dirs; i++)
                if (l->dirs[i].alive)
                        order[n++] = i;
        sort_dirs = l->dirs;
        qsort(order, n, sizeof *order, deeper_first);
        int r = 0;
        for (size_t k = 0; k < n && r == 0; k++) {
                struct dir_rec *d = &l->dirs[order[k]];
                l->e.name = d->name;
                l->e.name_len = d->name_len;
                l->e.mtime_bad = d->mtime_bad;
                int fd = open_dir(l, res, d->path, 0);
                if (fd < 0) {
                        r = fd == -1 ? (l->op = "open", fail_os(l, res, ENOENT)) : -1;
                        break;
                }
                l->op = "chmod";
                r = fchmod(fd, d->mode & 07777) < 0 ? fail_os(l, res, errno) : 0;
                if (r == 0)
                        r = set_times(l, res, fd, -1, d->mtime_ns);
                close(fd);
        }
        free(order);
        return r;
}

int sbx_layer_finish(struct sbx_layer *l, struct sbx_layer_res *res)
{
        if (l->failed)
                return fail(l, res, 0, "the layer failed already");
        if ((l->flags & SBX_LAYER_GZIP) && !l->member_done)
                return fail(l, res, 0, "cannot read the layer stream: the gzip stream ends inside a member");
        switch (l->st) {
        case END:
                break;
        case DATA:
                return fail(l, res, 1, "truncated archive");
        case SKIP:
                return fail(l, res, 0, "truncated archive: the last entry's data is cut short");
        default:
                if (l->first && l->have == 0 && l->st == HEADER)
                        return fail(l, res, 0, "not a tar archive: empty file");
                if (l->have || l->st == EXTENDED) {
                        l->header_at = l->offset - (long long)l->have;
                        return corrupt(l, res, l->st == EXTENDED ? "truncated extended header" : "truncated header");
                }
                l->header_at = l->offset;
                return corrupt(l, res, "empty header");
        }
        if (finish_directories(l, res) < 0)
                return -1;
        unsigned char digest[32];
        unsigned int n = 0;
        if (!dl.final(l->md, digest, &n) || n != 32)
                return fail(l, res, 0, "sha256 failed");
        memcpy(res->diff_id, "sha256:", 7);
        for (int i = 0; i < 32; i++)
                snprintf(res->diff_id + 7 + 2 * i, 3, "%02x", digest[i]);
        res->files = l->files;
        res->bytes = l->bytes;
        return 0;
}

void sbx_layer_free(struct sbx_layer *l)
{
        if (!l)
                return;
        if (l->fd >= 0)
                close(l->fd);
        if (l->cached_fd >= 0)
                close(l->cached_fd);
        if (l->z_live)
                dl.inflate_end(&l->z);
#ifdef HAVE_ISAL
        free(l->isal);
#endif
        if (l->md)
                dl.ctx_free(l->md);
        free(l->out);
        free(l->ext);
        clear_pending(l);
        pax_clear(&l->global);
        for (size_t i = 0; i < l->n_global_bufs; i++)
                free(l->global_bufs[i]);
        free(l->global_bufs);
        for (size_t i = 0; i < l->n_dirs; i++) {
                free(l->dirs[i].path);
                free(l->dirs[i].name);
        }
        free(l->dirs);
        free(l->table);
        free(l);
}
