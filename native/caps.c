/* caps.c: the container's capability sets, applied by stage 2 around its change of credentials.
 *
 * A root container keeps only the runtime default set (containerd defaultUnixCaps, Docker's list:
 * CapEff 00000000a80425fb), never the runtime's full set: everything else is dropped from the
 * bounding set (so no later execve can regain it), and permitted/effective are set to the kept
 * mask; inheritable and ambient are cleared, as the CRI does. spawn.c drops the bounding set before
 * the uid change and sets the rest after it (runc's order, with PR_SET_KEEPCAPS in between), so a
 * non-root user holds the kept set until execve, which then empties its permitted and effective
 * sets (no ambient capabilities, as containerd).
 *
 * Runs after fork: no malloc, no stdio.
 */
#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

int sbx_drop_bounding(unsigned long long keep, struct sbx_err *e)
{
        /* Every capability the kernel knows that we do not keep; the kernel answers EINVAL past
         * its last one (cap_last_cap). */
        int dropped = 0;
        for (int cap = 0; cap < 64; cap++) {
                if (keep & (1ULL << cap))
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break;
                        return sbx_fail(e, SBX_STAGE_SETUP, errno, "drop capability from bounding set", "");
                }
                dropped++;
        }
        sbx_report(SBX_STAGE_SETUP, SBX_TRACE_BOUNDING, dropped, 0, NULL);
        return 0;
}

int sbx_apply_caps(unsigned long long keep, struct sbx_err *e)
{
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "clear ambient capabilities", "");
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct data[2] = {
                { .effective = (__u32)keep, .permitted = (__u32)keep, .inheritable = 0 },
                { .effective = (__u32)(keep >> 32), .permitted = (__u32)(keep >> 32), .inheritable = 0 },
        };
        if (syscall(SYS_capset, &header, data) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "capset", "");
        sbx_report(SBX_STAGE_SETUP, SBX_TRACE_CAPSET, (long long)keep, 0, NULL);
        return 0;
}
