// SPDX-License-Identifier: MIT
/* cg_strerror: what an errno means when cowguard returns it. */
#include <errno.h>
#include <string.h>

#include "cowguard.h"

#define CG_ERRNO_MAP(X)                                                        \
	X(EINVAL, "invalid argument: zero length, unaligned range, unknown "  \
		  "flags, or memory that is not private anonymous of one kind")\
	X(EOVERFLOW, "range wraps around the end of the address space")       \
	X(ENOMEM, "range is not (entirely) mapped, or out of memory")         \
	X(EEXIST, "range overlaps a registered region")                       \
	X(ENOENT, "no registered region there")                               \
	X(EDQUOT, "cowguardd quota reached: regions, registered bytes or pins "\
		  "of this client, or registered bytes, pins or children of "  \
		  "your user (--max-user-*)")                                  \
	X(ENOSPC, "cowguardd refused: the memory it may spend on your user "  \
		  "is used up (--max-user-memory)")                           \
	X(EPERM, "no full userfaultfd for this process: userfaultfd(2) needs "\
		 "CAP_SYS_PTRACE and /dev/userfaultfd is not open to you; "   \
		 "join the group 'cowguard' (cowguard's install makes the "   \
		 "device root:cowguard 0660) and log in again, or run as "    \
		 "root; or the process is not dumpable (it changed its ids "  \
		 "without exec: prctl(PR_SET_DUMPABLE, 1))")                  \
	X(ENOSYS, "kernel lacks userfaultfd write-protect")                   \
	X(ECONNREFUSED, "cowguardd is not running on that socket")            \
	X(EACCES, "refused: the socket's server is neither root, nor you, "   \
		  "nor the system user cowguard, nor the user "               \
		  "$COWGUARD_DAEMON_USER names; or the daemon does not let "  \
		  "you see that process")                                     \
	X(ENOTCONN, "cowguardd went away and is not back: page state unknown, "\
		    "memory untracked until the next call reconnects")        \
	X(EPROTO, "protocol error between libcowguard and cowguardd")         \
	X(EPROTONOSUPPORT, "cowguardd speaks another protocol major version, "\
			   "or a snapshot image is of another version")     \
	X(EBADMSG, "the snapshot image is corrupt: a checksum or a record "   \
		   "does not match")                                          \
	X(ENODATA, "the snapshot image is truncated")                         \
	X(ENOEXEC, "not a cowguard snapshot image, or one never finished")    \
	X(ETIMEDOUT, "cowguardd did not answer in time")                      \
	X(ETIME, "the process kept changing its mappings (fork, madvise, "    \
		 "munmap in other threads) the whole time: nothing was done, "\
		 "try again")                                                 \
	X(EUSERS, "cowguardd refused: your user has its share of connections "\
		  "already (--max-conns-per-user)")                           \
	X(EOPNOTSUPP, "not supported by this kernel or this cowguardd (before "\
		      "Linux 5.19 hugetlb cannot be write-protected)")        \
	X(ESRCH, "the tracked process is gone or not yet identified")        \
	X(E2BIG, "an option this libcowguard does not know is set: the "      \
		 "program was built against a newer cowguard.h")               \
	X(EMLINK, "cowguardd refused: the process has more mappings (VMAs) "   \
		  "than it reads through for one client (--max-client-vmas)") \
	X(ENOTRECOVERABLE, "a pinned page was replaced while pinned: the "    \
			   "consumer may have read stale data")                \
	X(ESTALE, "memory the snapshot had not saved yet was dropped, "       \
		  "unmapped or moved meanwhile: no image was written, take it " \
		  "again")                                                     \
	X(ESPIPE, "a snapshot image goes to a regular file (its pages are "   \
		  "written out of order, its header last)")                   \
	X(EBUSY, "busy: a snapshot or a pin of this process is in progress, " \
		 "or a pin would write where the running snapshot has not "   \
		 "saved yet; try again after it")

const char *cg_strerror(int err)
{
	const char *s;

	switch (-err) {
	case 0:
		return "success";
#define X(code, text)                                                          \
	case code:                                                             \
		return text;
		CG_ERRNO_MAP(X)
#undef X
	}
	s = err < 0 ? strerrordesc_np(-err) : NULL;
	return s ? s : "unknown error";
}
