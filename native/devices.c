/* devices.c: a container's device allow-list on cgroup2, as an eBPF program (runc's devicefilter).
 *
 * cgroup2 has no devices controller files: the kernel asks the BPF_PROG_TYPE_CGROUP_DEVICE
 * programs attached to the task's cgroup (and, with BPF_F_ALLOW_MULTI, to its ancestors) on every
 * device open and mknod; any program returning 0 makes the call fail with EPERM. On a hybrid host
 * that check runs too, before the v1 devices controller's own (devcgroup_check_permission), so a
 * program attached on the unified side also binds a process placed there.
 *
 * The program reads struct bpf_cgroup_dev_ctx (access_type: device type in the low 16 bits,
 * BPF_DEVCG_ACC_* in the high 16; major; minor) and tests the rules from the last to the first:
 * the last rule that matches decides, nothing matching means deny. A rule matches when its type
 * is 'a' or equal, the access asked for is a subset of its access, and its major and minor are
 * -1 (any) or equal. sandbox/cgroups/devices.py hands over runc's reduced form (the v1 emulator's
 * exceptions, all of one verdict), where the order no longer matters.
 *
 * Runs in the runtime before any fork: plain syscalls, no allocation.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* r2 = type, r3 = access, r4 = major, r5 = minor (four loads and two ALU ops), then at most
 * nine instructions a rule, then the default verdict (two). */
#define PROLOGUE_LEN 6
#define RULE_MAX_LEN 9
#define PROG_MAX_LEN (PROLOGUE_LEN + RULE_MAX_LEN * SBX_DEVICE_RULES_MAX + 2)
#define ACCESS_ALL (BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE)

/* A device program calls no helper, so no GPL-only one either: runc loads it as "Apache". */
static const char license[] = "Apache";

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
        struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
        return i;
}

static int fail(struct sbx_err *e, int err, const char *op)
{
        return sbx_fail(e, SBX_STAGE_PARENT, err, op, "");
}

/* "rwm" subset to BPF_DEVCG_ACC_* bits; 0 for an empty or unknown access. */
static int access_bits(const char *access, size_t size)
{
        int bits = 0;
        for (size_t i = 0; i < size && access[i]; i++) {
                if (access[i] == 'r')
                        bits |= BPF_DEVCG_ACC_READ;
                else if (access[i] == 'w')
                        bits |= BPF_DEVCG_ACC_WRITE;
                else if (access[i] == 'm')
                        bits |= BPF_DEVCG_ACC_MKNOD;
                else
                        return 0;
        }
        return bits;
}

/* One rule's block at prog[at]: every test jumps past the block when it does not hold. */
static int emit_rule(struct bpf_insn *prog, int at, const struct sbx_device_rule *r, struct sbx_err *e)
{
        int type = r->type == 'a' ? 0 : r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : r->type == 'c' ? BPF_DEVCG_DEV_CHAR : -1;
        int bits = access_bits(r->access, sizeof r->access);
        if (type < 0 || !bits || r->major < -1 || r->minor < -1)
                return fail(e, EINVAL, "device rule");
        int len = 2 + (type ? 1 : 0) + (bits != ACCESS_ALL ? 3 : 0) + (r->major >= 0) + (r->minor >= 0);
        int end = at + len, i = at;
#define SKIP_FROM(pos) ((int16_t)(end - (pos)-1))
        if (type) {
                prog[i] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, SKIP_FROM(i), type);
                i++;
        }
        if (bits != ACCESS_ALL) { /* (access & bits) != access: something asked for is not granted */
                prog[i++] = insn(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
                prog[i++] = insn(BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, bits);
                prog[i] = insn(BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1, BPF_REG_3, SKIP_FROM(i), 0);
                i++;
        }
        if (r->major >= 0) {
                prog[i] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, SKIP_FROM(i), r->major);
                i++;
        }
        if (r->minor >= 0) {
                prog[i] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, SKIP_FROM(i), r->minor);
                i++;
        }
#undef SKIP_FROM
        prog[i++] = insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow ? 1 : 0);
        prog[i++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        return i;
}

/* "a *:* rwm": matches every request, so its block always returns. */
static int matches_all(const struct sbx_device_rule *r)
{
        return r->type == 'a' && r->major == -1 && r->minor == -1 && access_bits(r->access, sizeof r->access) == ACCESS_ALL;
}

static int build(struct bpf_insn *prog, const struct sbx_device_rule *rules, int n, struct sbx_err *e)
{
        int i = 0;
        prog[i++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0);
        prog[i++] = insn(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xFFFF);
        prog[i++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0);
        prog[i++] = insn(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
        prog[i++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0);
        prog[i++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0);
        for (int k = n - 1; k >= 0; k--) { /* last rule first: the last match wins */
                if ((i = emit_rule(prog, i, &rules[k], e)) < 0)
                        return -1;
                if (matches_all(&rules[k]))
                        return i; /* the verifier refuses code that cannot be reached */
        }
        prog[i++] = insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0); /* nothing matched: deny */
        prog[i++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        return i;
}

int sbx_device_filter_attach(int cgroup_fd, const struct sbx_device_rule *rules, int n, struct sbx_err *err)
{
        struct bpf_insn prog[PROG_MAX_LEN];
        if (n < 0 || n > SBX_DEVICE_RULES_MAX)
                return fail(err, E2BIG, "device rules");
        int len = build(prog, rules, n, err);
        if (len < 0)
                return -1;

        union bpf_attr load;
        memset(&load, 0, sizeof load);
        load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        load.insns = (uint64_t)(uintptr_t)prog;
        load.insn_cnt = (uint32_t)len;
        load.license = (uint64_t)(uintptr_t)license;
        /* the fd is CLOEXEC: the kernel sets O_CLOEXEC on every BPF object fd it returns */
        int prog_fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
        if (prog_fd < 0)
                return fail(err, errno, "bpf prog load (device filter)");

        /* BPF_F_ALLOW_MULTI, as runc: the programs of the ancestors still run (each must allow),
         * and a later program in this cgroup does not replace ours. */
        union bpf_attr attach;
        memset(&attach, 0, sizeof attach);
        attach.target_fd = (uint32_t)cgroup_fd;
        attach.attach_bpf_fd = (uint32_t)prog_fd;
        attach.attach_type = BPF_CGROUP_DEVICE;
        attach.attach_flags = BPF_F_ALLOW_MULTI;
        int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach);
        int saved = errno;
        close(prog_fd); /* the attachment holds its own reference to the program */
        if (rc < 0)
                return fail(err, saved, "bpf prog attach (device filter)");
        return 0;
}
