/* `swarmc image ...`: load, ls, rm. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "cli/json.h"
#include "cli/table.h"
#include "common/alloc.h"
#include "common/sort.h"
#include "proto/codec.h"

#define B CLI_FLAG_BOOL
#define V CLI_FLAG_VALUE

/* Docker's HumanSizeWithPrecision(size, 3): decimal units, 3 digits. */
static void human_size(int64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double v = (double)bytes;
    size_t i = 0;
    while (v >= 1000 && i + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        i++;
    }
    snprintf(buf, len, "%.3g%s", v, units[i]);
}

/* "sha256:abc..." -> "abc..." (12 characters unless no_trunc). */
static void short_id(const char *id, bool no_trunc, char *buf, size_t len)
{
    if (id == NULL)
        id = "";
    if (strncmp(id, "sha256:", 7) == 0 && !no_trunc)
        id += 7;
    snprintf(buf, len, no_trunc ? "%s" : "%.12s", id);
}

/* "registry:5000/app:1.0" -> repository "registry:5000/app", tag "1.0". */
static void split_tag(const char *ref, char *repo, size_t repo_len, const char **tag)
{
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(slash != NULL ? slash : ref, ':');
    if (colon == NULL) {
        snprintf(repo, repo_len, "%s", ref);
        *tag = "<none>";
        return;
    }
    snprintf(repo, repo_len, "%.*s", (int)(colon - ref), ref);
    *tag = colon + 1;
}

/* ------------------------------------------------------------------ load -- */

static int image_load(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    const char *input = cli_args_value(args, "input");
    if (input == NULL)
        return swm_err_set(err, SWM_ENOTSUP,
                           "reading an image from standard input is not yet supported: use "
                           "--input FILE");
    /* The daemon opens the file itself, from its own working directory. */
    char path[PATH_MAX];
    if (realpath(input, path) == NULL)
        return swm_err_set(err, -errno, "open %s: %s", input, strerror(errno));
    Swarmc__ImageLoadRequest load = SWARMC__IMAGE_LOAD_REQUEST__INIT;
    load.path = path;
    CLI_REQUEST(req, image_load, IMAGE_LOAD, &load);
    Swarmc__ControlResponse *resp = NULL;
    int rc = cli_rpc(ctx, &req, &resp, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < resp->n_images; i++) {
        const Swarmc__ImageSummary *img = resp->images[i];
        for (size_t t = 0; t < img->n_tags; t++)
            fprintf(ctx->out, "Loaded image: %s\n", img->tags[t]);
        if (img->n_tags == 0)
            fprintf(ctx->out, "Loaded image ID: %s\n", img->id != NULL ? img->id : "");
    }
    proto_free(resp);
    return 0;
}

/* -------------------------------------------------------------------- ls -- */

static int by_newest(const void *a, const void *b)
{
    const Swarmc__ImageSummary *ia = *(Swarmc__ImageSummary *const *)a;
    const Swarmc__ImageSummary *ib = *(Swarmc__ImageSummary *const *)b;
    return ia->created > ib->created ? -1 : ia->created < ib->created;
}

static int images_table(struct cli_ctx *ctx, Swarmc__ImageSummary *const *images, size_t n,
                        bool no_trunc, struct swm_buf *out)
{
    static const char *const header[] = {"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"};
    struct cli_table t;
    cli_table_init(&t, 5);
    int rc = cli_table_add(&t, header);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const Swarmc__ImageSummary *img = images[i];
        char id[80], created[64], size[32], repo[256];
        short_id(img->id, no_trunc, id, sizeof(id));
        if (img->created != 0)
            cli_ago(ctx, img->created, created, sizeof(created));
        else
            snprintf(created, sizeof(created), "N/A");
        human_size(img->size, size, sizeof(size));
        /* One row per tag; an untagged image gets one "<none>" row. */
        for (size_t k = 0; k < (img->n_tags > 0 ? img->n_tags : 1) && rc == 0; k++) {
            const char *tag = "<none>";
            if (img->n_tags > 0)
                split_tag(img->tags[k], repo, sizeof(repo), &tag);
            else
                snprintf(repo, sizeof(repo), "<none>");
            const char *cells[] = {repo, tag, id, created, size};
            rc = cli_table_add(&t, cells);
        }
    }
    if (rc == 0)
        rc = cli_table_render(&t, out);
    cli_table_free(&t);
    return rc;
}

static int image_ls(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    enum cli_output format;
    int rc = cli_output_format(args, &format, err);
    if (rc < 0)
        return rc;
    Swarmc__ImageListRequest list = SWARMC__IMAGE_LIST_REQUEST__INIT;
    CLI_REQUEST(req, image_list, IMAGE_LIST, &list);
    Swarmc__ControlResponse *resp = NULL;
    rc = cli_rpc(ctx, &req, &resp, err);
    if (rc < 0)
        return rc;
    swm_sort(resp->images, resp->n_images, sizeof(*resp->images), by_newest);
    bool no_trunc = cli_args_bool(args, "no-trunc");
    struct swm_buf b = {0};
    if (cli_args_bool(args, "quiet")) {
        char id[80];
        for (size_t i = 0; i < resp->n_images && rc == 0; i++) {
            short_id(resp->images[i]->id, no_trunc, id, sizeof(id));
            rc = swm_buf_printf(&b, "%s\n", id);
        }
    } else if (format == CLI_OUT_JSON) {
        rc = cli_json_print(ctx->out, (const ProtobufCMessage *const *)resp->images, resp->n_images,
                            CLI_JSON_LINES);
    } else {
        rc = images_table(ctx, resp->images, resp->n_images, no_trunc, &b);
    }
    rc = cli_flush_buf(ctx->out, &b, rc, err);
    proto_free(resp);
    return rc;
}

/* -------------------------------------------------------------------- rm -- */

/* True if ref names img by (a prefix of) its ID rather than by a tag. */
static bool is_id_ref(const char *ref, const Swarmc__ImageSummary *img)
{
    const char *id = img->id != NULL ? img->id : "";
    if (strncmp(id, "sha256:", 7) == 0 && strncmp(ref, "sha256:", 7) != 0)
        id += 7;
    return strncmp(id, ref, strlen(ref)) == 0;
}

static int image_rm(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    bool failed = false;
    for (size_t i = 0; i < args->n_pos; i++) {
        const char *ref = args->pos[i];
        Swarmc__ImageRemoveRequest rm = SWARMC__IMAGE_REMOVE_REQUEST__INIT;
        rm.ref = (char *)ref;
        rm.has_force = 1;
        rm.force = cli_args_bool(args, "force");
        CLI_REQUEST(req, image_remove, IMAGE_REMOVE, &rm);
        Swarmc__ControlResponse *resp = NULL;
        struct swm_err one = {0};
        if (cli_rpc(ctx, &req, &resp, &one) < 0) {
            fprintf(ctx->err, "%s\n", one.msg);
            failed = true;
            continue;
        }
        bool by_id = resp->n_images > 0 && is_id_ref(ref, resp->images[0]);
        if (!by_id) {
            const char *slash = strrchr(ref, '/');
            bool tagged = strchr(slash != NULL ? slash : ref, ':') != NULL;
            fprintf(ctx->out, "Untagged: %s%s\n", ref, tagged ? "" : ":latest");
        }
        for (size_t k = 0; k < resp->n_images; k++)
            fprintf(ctx->out, "Deleted: %s\n", resp->images[k]->id);
        proto_free(resp);
    }
    return failed ? swm_err_set(err, SWM_ENOTFOUND, "%s", "") : 0;
}

/* ----------------------------------------------------------------- table -- */

static const struct cli_flag load_flags[] = {
    {"input", 'i', V, CLI_KIND_STRING, NULL, "Read from tar archive file", NULL},
    {"quiet", 'q', B, CLI_KIND_BOOL, NULL, "Suppress the load output", NULL},
    {0},
};

static const struct cli_flag rm_flags[] = {
    {"force", 'f', B, CLI_KIND_BOOL, NULL, "Force removal of the image", NULL},
    {0},
};

const struct cli_cmd cli_image_cmds[] = {
    {"load", NULL, "[OPTIONS]", "Load an image from a tar archive", CLI_FLAGS(load_flags), 0, 0, 0,
     image_load, NULL},
    {"ls", "list", "[OPTIONS]", "List images",
     CLI_FLAGS(cli_flag_quiet_ids, cli_flag_format, cli_flag_no_trunc), 0, 0, 0, image_ls, NULL},
    {"rm", "remove", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", CLI_FLAGS(rm_flags),
     1, -1, 0, image_rm, NULL},
    {0},
};
