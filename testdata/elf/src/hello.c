/* The program of the code_files fixture: needs libgreet.so (found through its RUNPATH,
 * $ORIGIN/../lib/hello) and libc. */
void greet(void);
int main(void) { greet(); return 0; }
