/* probe: print, one "key=value" a line, what a run's confinement looks like from inside:
 * ids, supplementary groups, no_new_privs, capabilities, signal state, core and file-size
 * limits, CPU affinity, cwd. */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Capabilities still in the bounding or ambient set (asked one by one until the kernel says
 * it knows no more). */
static int count_in_set(int option, int ask)
{
	int count = 0;
	for (int cap = 0; cap < 64; cap++) {
		int in = ask == PR_CAP_AMBIENT ? prctl(ask, PR_CAP_AMBIENT_IS_SET, cap, 0, 0)
					       : prctl(option, cap, 0, 0, 0);
		if (in < 0)
			break;
		count += in;
	}
	return count;
}

static void print_limit(const char *name, rlim_t value)
{
	if (value == RLIM_INFINITY) printf("%s=unlimited\n", name);
	else printf("%s=%llu\n", name, (unsigned long long)value);
}

int main(void)
{
	struct rlimit core, fsize;
	getrlimit(RLIMIT_CORE, &core);
	getrlimit(RLIMIT_FSIZE, &fsize);

	printf("uid=%d\neuid=%d\ngid=%d\negid=%d\n", getuid(), geteuid(), getgid(), getegid());
	printf("groups=%d\n", getgroups(0, NULL));
	printf("no_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {{0}};
	syscall(SYS_capget, &header, data);
	printf("cap_effective=%x%08x\ncap_permitted=%x%08x\ncap_inheritable=%x%08x\n",
	       data[1].effective, data[0].effective, data[1].permitted, data[0].permitted,
	       data[1].inheritable, data[0].inheritable);
	printf("cap_bounding=%d\n", count_in_set(PR_CAPBSET_READ, 0));
	printf("cap_ambient=%d\n", count_in_set(0, PR_CAP_AMBIENT));
	struct sigaction pipe_action;
	sigaction(SIGPIPE, NULL, &pipe_action);
	printf("sigpipe=%s\n", pipe_action.sa_handler == SIG_IGN   ? "ignored"
				 : pipe_action.sa_handler == SIG_DFL ? "default"
								     : "caught");
	sigset_t blocked;
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	int blocked_count = 0;
	for (int signal = 1; signal < NSIG; signal++)
		blocked_count += sigismember(&blocked, signal) == 1;
	printf("signals_blocked=%d\n", blocked_count);
	print_limit("core_soft", core.rlim_cur);
	print_limit("core_hard", core.rlim_max);
	print_limit("fsize_soft", fsize.rlim_cur);
	print_limit("fsize_hard", fsize.rlim_max);

	cpu_set_t cpus;
	sched_getaffinity(0, sizeof cpus, &cpus);
	printf("cpus=");
	const char *separator = "";
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &cpus)) {
			printf("%s%d", separator, cpu);
			separator = ",";
		}
	}
	printf("\n");

	char cwd[4096];
	printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
	return 0;
}
