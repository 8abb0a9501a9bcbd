/* libgreet.so of the code_files fixture: needs libc. */
#include <stdio.h>
void greet(void) { puts("hello"); }
