#include "daemon/images.h"

#include "agent/image/image.h"
#include "common/alloc.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>

struct image_job {
    uv_work_t work;
    struct node_daemon *nd;
    Swarmc__ControlRequest *req; /* owned copy */
    controlapi_reply_cb cb;
    void *arg;
    Swarmc__ControlResponse *resp;
    struct swm_err err;
    /* In-use snapshot taken on the loop thread: image ids used by tasks. */
    char **in_use_ids;
    size_t n_in_use;
};

/* One summary per loaded reference: a tag, or an image id for an untagged
 * image. */
static int add_loaded(Swarmc__ControlResponse *resp, const char *ref)
{
    Swarmc__ImageSummary **grown = swm_realloc(resp->images, (resp->n_images + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    resp->images = grown;
    Swarmc__ImageSummary *img = swm_malloc(sizeof(*img));
    if (img == NULL)
        return -ENOMEM;
    swarmc__image_summary__init(img);
    grown[resp->n_images++] = img;
    if (strncmp(ref, "sha256:", 7) == 0)
        return (img->id = swm_strdup(ref)) == NULL ? -ENOMEM : 0;
    img->tags = swm_calloc(1, sizeof(char *));
    if (img->tags == NULL || (img->tags[0] = swm_strdup(ref)) == NULL)
        return -ENOMEM;
    img->n_tags = 1;
    return 0;
}

static int do_load(struct image_job *job)
{
    char **loaded = NULL;
    int rc =
        image_load(agent_images(job->nd->agent), job->req->image_load->path, &loaded, &job->err);
    for (size_t i = 0; rc == 0 && loaded != NULL && loaded[i] != NULL; i++)
        rc = add_loaded(job->resp, loaded[i]);
    image_strv_free(loaded);
    return rc;
}

static int summary_to_proto(const struct image_summary *s, Swarmc__ImageSummary **out)
{
    Swarmc__ImageSummary *p = swm_malloc(sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    swarmc__image_summary__init(p);
    *out = p;
    p->id = swm_strdup(s->id);
    p->has_size = p->has_created = 1;
    p->size = s->size;
    p->created = s->created_ns;
    size_t n = 0;
    while (s->tags != NULL && s->tags[n] != NULL)
        n++;
    p->tags = swm_calloc(n + 1, sizeof(char *));
    if (p->id == NULL || p->tags == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((p->tags[i] = swm_strdup(s->tags[i])) == NULL)
            return -ENOMEM;
        p->n_tags++;
    }
    return 0;
}

static int do_list(struct image_job *job)
{
    struct image_summary *list = NULL;
    size_t n = 0;
    int rc = image_list(agent_images(job->nd->agent), &list, &n, &job->err);
    if (rc == 0) {
        job->resp->images = swm_calloc(n + 1, sizeof(*job->resp->images));
        rc = job->resp->images == NULL ? -ENOMEM : 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = summary_to_proto(&list[i], &job->resp->images[i]);
        job->resp->n_images = i + 1;
    }
    image_summary_free_array(list, n);
    return rc;
}

static bool image_in_use(const char *id, void *arg)
{
    const struct image_job *job = arg;
    for (size_t i = 0; i < job->n_in_use; i++) {
        if (strcmp(job->in_use_ids[i], id) == 0)
            return true;
    }
    return false;
}

static void work(uv_work_t *req)
{
    struct image_job *job = req->data;
    job->resp = controlapi_ok_response();
    if (job->resp == NULL) {
        swm_err_set(&job->err, -ENOMEM, "out of memory");
        return;
    }
    int rc;
    switch (job->req->op_case) {
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_LOAD:
        rc = do_load(job);
        break;
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_LIST:
        rc = do_list(job);
        break;
    default:
        rc = image_remove(agent_images(job->nd->agent), job->req->image_remove->ref, image_in_use,
                          job, &job->err);
        break;
    }
    if (rc < 0 && job->err.code == 0)
        swm_err_set(&job->err, rc, "%s", swm_strerror(rc));
}

static void after_work(uv_work_t *req, int status)
{
    struct image_job *job = req->data;
    Swarmc__ControlResponse *resp = job->resp;
    if (job->err.code != 0 || status < 0) {
        proto_free(resp);
        resp = controlapi_error_response(job->err.code != 0 ? job->err.code : status, job->err.msg);
    }
    job->cb(job->arg, resp);
    proto_free(job->req);
    for (size_t i = 0; i < job->n_in_use; i++)
        swm_free(job->in_use_ids[i]);
    swm_free(job->in_use_ids);
    swm_free(job);
}

/* The fields a request must carry; the rest of the file may rely on them. */
static const char *missing_field(const Swarmc__ControlRequest *req)
{
    if (req->op_case == SWARMC__CONTROL_REQUEST__OP_IMAGE_LOAD &&
        (req->image_load->path == NULL || req->image_load->path[0] == '\0'))
        return "image load: a file path is required";
    if (req->op_case == SWARMC__CONTROL_REQUEST__OP_IMAGE_REMOVE &&
        (req->image_remove->ref == NULL || req->image_remove->ref[0] == '\0'))
        return "image rm: an image reference is required";
    return NULL;
}

void daemon__images(struct node_daemon *nd, const Swarmc__ControlRequest *req,
                    controlapi_reply_cb cb, void *arg)
{
    const char *missing = missing_field(req);
    if (missing != NULL) {
        cb(arg, controlapi_error_response(-EINVAL, missing));
        return;
    }
    struct image_job *job = swm_calloc(1, sizeof(*job));
    Swarmc__ControlRequest *copy = job != NULL ? proto_clone(req) : NULL;
    if (copy == NULL) {
        swm_free(job);
        cb(arg, controlapi_error_response(-ENOMEM, "out of memory"));
        return;
    }
    job->nd = nd;
    job->req = copy;
    job->cb = cb;
    job->arg = arg;
    job->work.data = job;
    if (req->op_case == SWARMC__CONTROL_REQUEST__OP_IMAGE_REMOVE)
        agent_images_in_use(nd->agent, &job->in_use_ids, &job->n_in_use);
    int rc = uv_queue_work(&nd->loop, &job->work, work, after_work);
    if (rc < 0) {
        proto_free(copy);
        swm_free(job);
        cb(arg, controlapi_error_response(rc, uv_strerror(rc)));
    }
}
