/*
 * srv_cov.h - gcov's counts of a process that ends with _exit() (scripts/coverage's build only).
 *
 * A coverage build (gcc --coverage) writes its counts at exit(); _exit() skips that, so the lines that only csc-sam's
 * supervisor and its sender helper run (forked, and ended with _exit: no atexit handler of csc-server's may run there)
 * would never be counted. scripts/coverage compiles with -DCSC_COVERAGE, and SRV_COV_DUMP() then writes them just
 * before such an _exit(); in every other build it is nothing.
 */
#ifndef SRV_COV_H
#define SRV_COV_H

#ifdef CSC_COVERAGE
void __gcov_dump(void); /* libgcov's */
#define SRV_COV_DUMP() __gcov_dump()
#else
#define SRV_COV_DUMP() ((void)0)
#endif

#endif
