/* membomb (hostile): allocate and touch memory forever. The OOM killer of the run's memory
 * cgroup must end it, and nothing outside the run may be touched. */
#include <stdlib.h>
#include <unistd.h>

#define STEP (1 << 20)

int main(void)
{
	for (;;) {
		char *block = malloc(STEP);
		if (block == NULL) {
			pause();
			continue;
		}
		/* volatile: the compiler must not drop stores nobody reads. */
		for (size_t i = 0; i < STEP; i += 4096)
			((volatile char *)block)[i] = 1;
	}
}
