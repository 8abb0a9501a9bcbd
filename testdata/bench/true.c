/* The cheapest possible program: what one run of it costs is the sandbox's own cost. */
int main(void) { return 0; }
