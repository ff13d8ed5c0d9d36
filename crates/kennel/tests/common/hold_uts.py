# Takes every UTS namespace one host uid may own, and holds them until
# stdin closes (Python 3, standard library only).
#
#   python3 hold_uts.py UID     prints how many it holds once the kernel
#                               refuses one more, then waits for EOF
#
# A test uses this to make the kernel refuse a VE's namespaces without
# writing user.max_uts_namespaces, which needs CAP_SYS_RESOURCE (root on
# CI machines lacks it). Only the given uid's count is used up: the rest
# of the host is untouched. Each process keeps its namespaces open as
# descriptors, so as many processes as RLIMIT_NOFILE requires are forked;
# all of them exit when stdin closes.
import ctypes
import errno
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWUTS = 0x04000000
libc = ctypes.CDLL(None, use_errno=True)


def unshare(flags):
    if libc.unshare(flags) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.ENOSPC:
        return False
    raise OSError(err, os.strerror(err))


def fill(limit):
    """Namespaces made and held here (at most `limit`); whether the
    kernel refused the next one."""
    held = []
    while len(held) < limit:
        if not unshare(CLONE_NEWUTS):
            return len(held), True
        held.append(os.open('/proc/thread-self/ns/uts', os.O_RDONLY))
    return len(held), False


def main():
    uid = int(sys.argv[1])
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    # The uid's own user namespace gives the rights to make UTS ones;
    # each counts against the uid in the host's namespace.
    unshare(CLONE_NEWUSER)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    per_process = max(soft - 64, 64)
    total, full, children = 0, False, []
    while not full:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            made, refused = fill(per_process)
            os.write(w, f'{made} {int(refused)}\n'.encode())
            os.close(w)
            sys.stdin.read()
            os._exit(0)
        os.close(w)
        children.append(pid)
        with os.fdopen(r) as report:
            made, refused = report.read().split()
        total += int(made)
        full = refused == '1'
    print(total, flush=True)
    sys.stdin.read()
    for pid in children:
        os.waitpid(pid, 0)


main()
