# @EXPECTED_RESULTS@: NO-OUTPUT
# Cheats: searches the filesystem for a test case input equal to its own and prints the answer
# file beside it (`NAME.ans` next to `NAME.in`, as in every problem package), computing nothing.
# Without a sandbox that hides the host this is judged correct; the sandbox shows the program
# only its own work dir, so it finds nothing and prints nothing.
import os
import sys

wanted = sys.stdin.read()
# Trees that hold no problem packages, skipped to stay within the time limit even when the
# disk is busy. On the host /bin, /lib and /lib64 are links into /usr (not followed); in the
# sandbox they are bind mounts of it, tens of thousands of entries.
SKIPPED = {"/proc", "/sys", "/dev", "/usr", "/bin", "/lib", "/lib64", "/run", "/var", "/etc", "/boot"}
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in SKIPPED and d != "target"]
    for name in files:
        if not name.endswith(".in"):
            continue
        path = os.path.join(top, name)
        try:
            with open(path) as candidate:
                if candidate.read() != wanted:
                    continue
            with open(path[: -len(".in")] + ".ans") as answer:
                sys.stdout.write(answer.read())
            sys.exit(0)
        except OSError:
            pass
