/* Column tables laid out like the Docker CLI's (Go text/tabwriter with
 * minwidth 10, padding 3): every column but the last is as wide as its widest
 * cell plus three spaces, at least ten; the last column is not padded.
 */
#ifndef SWM_CLI_TABLE_H
#define SWM_CLI_TABLE_H

#include <stddef.h>

#include "common/buf.h"

struct cli_table {
    size_t n_cols;
    size_t n_rows; /* including the header row, if any */
    size_t cap_rows;
    char **cells; /* n_rows * n_cols owned strings */
};

/* Starts an empty table of n_cols columns. No allocation; cannot fail. */
void cli_table_init(struct cli_table *t, size_t n_cols);

/* Appends a row of n_cols cells (copied; NULL is an empty cell). Returns 0
 * or -ENOMEM (table unchanged). */
int cli_table_add(struct cli_table *t, const char *const *cells);

/* Appends the laid-out table to out. Returns 0 or -ENOMEM. */
int cli_table_render(const struct cli_table *t, struct swm_buf *out);

/* Frees the cells. Accepts an initialized or half-built table. */
void cli_table_free(struct cli_table *t);

/* Display width of a UTF-8 string (code points). */
size_t cli_text_width(const char *s);

/* Copies s into buf, cut to at most max code points with "…" as the last
 * one when it is longer (Docker's formatter.Ellipsis). */
void cli_ellipsis(const char *s, size_t max, char *buf, size_t len);

#endif
