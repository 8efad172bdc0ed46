/* Clocks. Wall-clock nanoseconds are what objects store (timestamps shown to
 * users); monotonic nanoseconds measure intervals. */
#ifndef SWM_COMMON_TIMEUTIL_H
#define SWM_COMMON_TIMEUTIL_H

#include <stdint.h>

int64_t swm_now_ns(void);
int64_t swm_mono_ns(void);

#define SWM_NS_PER_MS INT64_C(1000000)
#define SWM_NS_PER_SEC INT64_C(1000000000)

#endif
