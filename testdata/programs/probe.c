/* probe: print, one "key=value" a line, what a run's confinement looks like from inside:
 * ids, supplementary groups, no_new_privs, core and file-size limits, CPU affinity, cwd. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

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
