/* Parsers and formatters for the values users type: durations ("1m30s"),
 * sizes ("512M"), CPU counts ("0.5"). They accept exactly what the Docker CLI
 * accepts and reject everything else with -EINVAL. */
#ifndef SWM_COMMON_PARSE_H
#define SWM_COMMON_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Go time.ParseDuration syntax: a sequence of decimal numbers with optional
 * fraction and a unit (ns, us, µs, ms, s, m, h), e.g. "300ms", "1h2m", "1.5s";
 * "0" alone is allowed. Negative durations are rejected. Sets *ns. */
int swm_parse_duration(const char *s, int64_t *ns);

/* Docker's RAMInBytes: a number with optional unit b, k, m, g, t, p (case
 * insensitive, optional trailing "b"/"ib"), binary multiples. Sets *bytes. */
int swm_parse_bytes(const char *s, int64_t *bytes);

/* CPU count as a decimal ("0.5", "2") into nano-CPUs (1e9 per CPU). */
int swm_parse_nano_cpus(const char *s, int64_t *nano_cpus);

/* Strict non-negative integer (decimal), at most max. */
int swm_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Formats ns the way Go prints a time.Duration ("1m30s", "500ms", "0s"). */
void swm_format_duration(int64_t ns, char *buf, size_t len);

/* Formats bytes as Docker does for humans ("512MiB", "1.5GiB"). */
void swm_format_bytes(int64_t bytes, char *buf, size_t len);

/* Formats "how long ago" as Docker's "2 minutes ago" / "About an hour ago". */
void swm_format_ago(int64_t since_ns, int64_t now_ns, char *buf, size_t len);

#endif
