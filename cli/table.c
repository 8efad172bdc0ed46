#include "cli/table.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

#define TABLE_MIN_WIDTH 10
#define TABLE_PADDING 3

void cli_table_init(struct cli_table *t, size_t n_cols)
{
    memset(t, 0, sizeof(*t));
    t->n_cols = n_cols;
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows == 0 ? 16 : t->cap_rows * 2;
        char **grown = swm_realloc(t->cells, cap * t->n_cols * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        t->cells = grown;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->n_rows * t->n_cols;
    for (size_t c = 0; c < t->n_cols; c++) {
        row[c] = swm_strdup(cells[c] != NULL ? cells[c] : "");
        if (row[c] == NULL) {
            while (c-- > 0)
                swm_free(row[c]);
            return -ENOMEM;
        }
    }
    t->n_rows++;
    return 0;
}

size_t cli_text_width(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

void cli_ellipsis(const char *s, size_t max, char *buf, size_t len)
{
    if (len == 0)
        return;
    if (cli_text_width(s) <= max || max == 0) {
        snprintf(buf, len, "%s", max == 0 ? "" : s);
        return;
    }
    /* Keep max-1 code points, then the ellipsis. */
    size_t points = 0;
    const char *p = s;
    while (*p != '\0') {
        if (((unsigned char)*p & 0xC0) != 0x80) {
            if (points == max - 1)
                break;
            points++;
        }
        p++;
    }
    snprintf(buf, len, "%.*s\xe2\x80\xa6", (int)(p - s), s);
}

int cli_table_render(const struct cli_table *t, struct swm_buf *out)
{
    if (t->n_rows == 0)
        return 0;
    size_t *widths = swm_calloc(t->n_cols, sizeof(*widths));
    if (widths == NULL)
        return -ENOMEM;
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t w = cli_text_width(t->cells[r * t->n_cols + c]) + TABLE_PADDING;
            if (w > widths[c])
                widths[c] = w;
        }
    }
    int rc = 0;
    for (size_t r = 0; r < t->n_rows && rc == 0; r++) {
        for (size_t c = 0; c < t->n_cols && rc == 0; c++) {
            const char *cell = t->cells[r * t->n_cols + c];
            rc = swm_buf_printf(out, "%s", cell);
            if (c + 1 == t->n_cols)
                break;
            size_t width = widths[c] < TABLE_MIN_WIDTH ? TABLE_MIN_WIDTH : widths[c];
            for (size_t pad = cli_text_width(cell); pad < width && rc == 0; pad++)
                rc = swm_buf_append(out, " ", 1);
        }
        if (rc == 0)
            rc = swm_buf_append(out, "\n", 1);
    }
    swm_free(widths);
    return rc;
}

void cli_table_free(struct cli_table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        swm_free(t->cells[i]);
    swm_free(t->cells);
    t->cells = NULL;
    t->n_rows = 0;
    t->cap_rows = 0;
}
