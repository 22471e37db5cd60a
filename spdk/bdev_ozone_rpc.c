/*   SPDX-License-Identifier: BSD-3-Clause
 *   Copyright (C) 2026 The bdev_ozone authors.
 *   All rights reserved.
 */

/*
 * bdev_ozone RPCs: bdev_ozone_create and bdev_ozone_delete.
 * Owns: decoding and checking parameters (by hand: SPDK's generated decoders are not
 * installed), naming the offending parameter in every error, and the JSON-RPC responses.
 * Must never: call the engine, wait for a result (create/delete answer through callbacks
 * on the app thread), or answer a request twice.
 */

#include "spdk/stdinc.h"

#include "bdev_ozone.h"
#include "spdk/json.h"
#include "spdk/jsonrpc.h"
#include "spdk/log.h"
#include "spdk/rpc.h"
#include "spdk/string.h"
#include "spdk/util.h"
#include "spdk/uuid.h"

struct bdev_ozone_param {
	const char			*name;
	spdk_json_decode_fn		decode;
	size_t				offset;
	const char			*what;	/* for the error message */
	bool				required;
};

/*
 * Decode `params` (an object) with `table`: every key must be known, every value must
 * decode, every required key must be present. On failure writes a message naming the
 * parameter into msg and returns -EINVAL.
 */
static int
bdev_ozone_decode(const struct spdk_json_val *params, const struct bdev_ozone_param *table,
		  size_t n, void *out, char *msg, size_t msglen)
{
	bool seen[16] = {};
	const struct spdk_json_val *key, *val;
	size_t i;
	uint32_t k;

	assert(n <= SPDK_COUNTOF(seen));
	if (params == NULL) {
		snprintf(msg, msglen, "missing parameters object");
		return -EINVAL;
	}
	if (params->type != SPDK_JSON_VAL_OBJECT_BEGIN) {
		snprintf(msg, msglen, "parameters must be a JSON object");
		return -EINVAL;
	}
	for (k = 1; k <= params->len;) {
		key = &params[k];
		val = &params[k + 1];
		for (i = 0; i < n; i++) {
			if (spdk_json_strequal(key, table[i].name)) {
				break;
			}
		}
		if (i == n) {
			char *name = spdk_json_strdup(key);

			snprintf(msg, msglen, "unknown parameter '%s'", name ? name : "?");
			free(name);
			return -EINVAL;
		}
		if (seen[i]) {
			snprintf(msg, msglen, "parameter '%s' given twice", table[i].name);
			return -EINVAL;
		}
		seen[i] = true;
		if (table[i].decode(val, (char *)out + table[i].offset) != 0) {
			snprintf(msg, msglen, "parameter '%s' must be %s", table[i].name, table[i].what);
			return -EINVAL;
		}
		k += 1 + spdk_json_val_len(val);
	}
	for (i = 0; i < n; i++) {
		if (table[i].required && !seen[i]) {
			snprintf(msg, msglen, "missing required parameter '%s'", table[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* bdev_ozone_create */

static void
free_rpc_bdev_ozone_create(struct bdev_ozone_create_opts *req)
{
	free(req->name);
	free(req->uri);
	free(req->uuid);
}

static const struct bdev_ozone_param rpc_bdev_ozone_create_params[] = {
	{"name", spdk_json_decode_string, offsetof(struct bdev_ozone_create_opts, name), "a string", true},
	{"uri", spdk_json_decode_string, offsetof(struct bdev_ozone_create_opts, uri), "a string", true},
	{"size", spdk_json_decode_uint64, offsetof(struct bdev_ozone_create_opts, size), "a number of bytes", false},
	{"block_size", spdk_json_decode_uint32, offsetof(struct bdev_ozone_create_opts, block_size), "512 or 4096", false},
	{"chunk_size", spdk_json_decode_uint64, offsetof(struct bdev_ozone_create_opts, chunk_size), "a number of bytes", false},
	{"uuid", spdk_json_decode_string, offsetof(struct bdev_ozone_create_opts, uuid), "a UUID string", false},
	{"timeout_ms", spdk_json_decode_uint32, offsetof(struct bdev_ozone_create_opts, timeout_ms), "a number of milliseconds", false},
	{"workers", spdk_json_decode_uint32, offsetof(struct bdev_ozone_create_opts, workers), "a number of threads", false},
	{"retry_ms", spdk_json_decode_uint32, offsetof(struct bdev_ozone_create_opts, retry_ms), "a number of milliseconds", false},
};

static void
rpc_bdev_ozone_create_done(void *cb_arg, int rc, const char *bdev_name, bool created,
			   const char *uuid, const char *errmsg)
{
	struct spdk_jsonrpc_request *request = cb_arg;
	struct spdk_json_write_ctx *w;

	if (rc != 0) {
		spdk_jsonrpc_send_error_response(request, rc, errmsg ? errmsg : spdk_strerror(-rc));
		return;
	}
	w = spdk_jsonrpc_begin_result(request);
	spdk_json_write_object_begin(w);
	spdk_json_write_named_string(w, "name", bdev_name);
	spdk_json_write_named_string(w, "action", created ? "created" : "opened");
	spdk_json_write_named_string(w, "uuid", uuid);
	spdk_json_write_object_end(w);
	spdk_jsonrpc_end_result(request, w);
}

static void
rpc_bdev_ozone_create(struct spdk_jsonrpc_request *request, const struct spdk_json_val *params)
{
	struct bdev_ozone_create_opts req = {};
	struct spdk_uuid u;
	char msg[256];

	if (bdev_ozone_decode(params, rpc_bdev_ozone_create_params,
			      SPDK_COUNTOF(rpc_bdev_ozone_create_params), &req, msg, sizeof(msg)) != 0) {
		spdk_jsonrpc_send_error_response(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS, msg);
		goto out;
	}
	if (req.name[0] == '\0' || req.uri[0] == '\0') {
		spdk_jsonrpc_send_error_response(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS,
						 "parameters 'name' and 'uri' must not be empty");
		goto out;
	}
	if (req.block_size != 0 && req.block_size != 512 && req.block_size != 4096) {
		spdk_jsonrpc_send_error_response_fmt(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS,
						     "parameter 'block_size' must be 512 or 4096, not %" PRIu32,
						     req.block_size);
		goto out;
	}
	if (req.chunk_size != 0 && (!spdk_u64_is_pow2(req.chunk_size) ||
				    req.chunk_size < 65536 || req.chunk_size > 256ULL * 1024 * 1024)) {
		spdk_jsonrpc_send_error_response_fmt(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS,
						     "parameter 'chunk_size' must be a power of two from 65536 to 268435456, not %"
						     PRIu64, req.chunk_size);
		goto out;
	}
	if (req.uuid != NULL && spdk_uuid_parse(&u, req.uuid) != 0) {
		spdk_jsonrpc_send_error_response_fmt(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS,
						     "parameter 'uuid' ('%s') is not a UUID", req.uuid);
		goto out;
	}
	if (strncmp(req.uri, "ofs://", 6) != 0 && strncmp(req.uri, "file://", 7) != 0) {
		spdk_jsonrpc_send_error_response_fmt(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS,
						     "parameter 'uri' ('%s') must start with ofs:// or file://", req.uri);
		goto out;
	}

	bdev_ozone_create(&req, rpc_bdev_ozone_create_done, request);
out:
	free_rpc_bdev_ozone_create(&req);
}
SPDK_RPC_REGISTER("bdev_ozone_create", rpc_bdev_ozone_create, SPDK_RPC_RUNTIME)

/* ---------------------------------------------------------------------------------------- */
/* bdev_ozone_delete */

struct rpc_bdev_ozone_delete {
	char *name;
	bool destroy_data;
};

static const struct bdev_ozone_param rpc_bdev_ozone_delete_params[] = {
	{"name", spdk_json_decode_string, offsetof(struct rpc_bdev_ozone_delete, name), "a string", true},
	{"destroy_data", spdk_json_decode_bool, offsetof(struct rpc_bdev_ozone_delete, destroy_data), "true or false", false},
};

static void
rpc_bdev_ozone_delete_done(void *cb_arg, int rc, const char *errmsg)
{
	struct spdk_jsonrpc_request *request = cb_arg;

	if (rc != 0) {
		spdk_jsonrpc_send_error_response(request, rc, errmsg ? errmsg : spdk_strerror(-rc));
		return;
	}
	spdk_jsonrpc_send_bool_response(request, true);
}

static void
rpc_bdev_ozone_delete(struct spdk_jsonrpc_request *request, const struct spdk_json_val *params)
{
	struct rpc_bdev_ozone_delete req = {};
	char msg[256];

	if (bdev_ozone_decode(params, rpc_bdev_ozone_delete_params,
			      SPDK_COUNTOF(rpc_bdev_ozone_delete_params), &req, msg, sizeof(msg)) != 0) {
		spdk_jsonrpc_send_error_response(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS, msg);
		goto out;
	}
	bdev_ozone_delete(req.name, req.destroy_data, rpc_bdev_ozone_delete_done, request);
out:
	free(req.name);
}
SPDK_RPC_REGISTER("bdev_ozone_delete", rpc_bdev_ozone_delete, SPDK_RPC_RUNTIME)
