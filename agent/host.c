/* What the agent tells the dispatcher about this host. */
#include "agent/internal.h"

#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Go's GOARCH names, which constraints (node.platform.arch) compare to. */
static const char *go_arch(const char *machine)
{
    static const struct {
        const char *uname, *go;
    } names[] = {{"x86_64", "amd64"},   {"aarch64", "arm64"},   {"armv7l", "arm"},
                 {"i686", "386"},       {"ppc64le", "ppc64le"}, {"s390x", "s390x"},
                 {"riscv64", "riscv64"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(machine, names[i].uname) == 0)
            return names[i].go;
    }
    return "unknown";
}

void agent__describe_host(Swarmc__Platform *platform, Swarmc__Resources *capacity)
{
    struct utsname u;
    platform->os = "linux";
    platform->architecture = uname(&u) == 0 ? (char *)go_arch(u.machine) : "unknown";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct sysinfo si;
    capacity->has_nano_cpus = 1;
    capacity->nano_cpus = (int64_t)(cpus > 0 ? cpus : 1) * 1000000000LL;
    if (sysinfo(&si) == 0) {
        capacity->has_memory_bytes = 1;
        capacity->memory_bytes = (int64_t)si.totalram * (int64_t)si.mem_unit;
    }
}
