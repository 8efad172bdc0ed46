/* Image requests of the control socket: load, list, remove, run on the
 * threadpool because they read and unpack tarballs. */
#ifndef SWM_DAEMON_IMAGES_H
#define SWM_DAEMON_IMAGES_H

#include "daemon/internal.h"

/* Answers req (an image op) through cb(arg, resp) on the loop thread. */
void daemon__images(struct node_daemon *nd, const Swarmc__ControlRequest *req,
                    controlapi_reply_cb cb, void *arg);

#endif
