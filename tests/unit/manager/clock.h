/* Clocks the test moves by hand. Linked into a test binary, clock.c defines
 * swm_now_ns() and swm_mono_ns() itself, so the linker never pulls
 * common/timeutil.c out of libswm_common: the manager's timed passes and
 * the dispatcher's heartbeat deadlines then depend on these values only,
 * not on how fast a loaded machine runs the loop. (libuv timers still tick
 * in real time: they only decide when the code looks at the clock.) */
#ifndef SWM_TESTS_UNIT_MANAGER_CLOCK_H
#define SWM_TESTS_UNIT_MANAGER_CLOCK_H

#include <stdint.h>

/* What swm_now_ns() returns; starts at CFX_T0. */
extern int64_t test_clock_now_ns;
/* What swm_mono_ns() returns; starts at 1000 s. */
extern int64_t test_clock_mono_ns;

#endif
