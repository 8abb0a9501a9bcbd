/* forkbomb (hostile): every process forks forever. A process limit must contain it, the time
 * limits must end it, and nothing of it may survive the run. */
#include <unistd.h>

int main(void)
{
	for (;;) fork();
}
