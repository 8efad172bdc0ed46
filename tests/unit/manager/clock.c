#include "clock.h"

#include "cluster.h"
#include "common/timeutil.h"

int64_t test_clock_now_ns = CFX_T0;
int64_t test_clock_mono_ns = 1000 * SWM_NS_PER_SEC;

int64_t swm_now_ns(void)
{
    return test_clock_now_ns;
}

int64_t swm_mono_ns(void)
{
    return test_clock_mono_ns;
}
