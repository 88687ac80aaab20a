/*
 * todo-followup:
 * - on todo.created: a todo with priority "High" gets a follow-up todo
 *   {"description": prefix + its description, "priority": "Medium"} (the follow-up is
 *   Medium, and starts with the prefix, so it never follows itself up);
 * - before_insert on todo: a todo without a priority gets "priority":"Medium";
 * - GET /open: {"open": N}, the number of todos whose status is Open.
 */
#include "codexion.h"

#define DEFAULT_PREFIX "Follow up: "

/* The configured prefix (the manifest's default if the config lacks it). */
static cx_str prefix(void) {
  cx_str value;
  if (cx_json_string_field(cx_config(), "prefix", &value)) return value;
  return CX_LIT(DEFAULT_PREFIX);
}

int cx_on_event(cx_str event, cx_str *err) {
  cx_str entity, action, data, priority, description, id;
  if (!cx_json_string_field(event, "entity", &entity) || !cx_str_eq(entity, CX_LIT("todo")) ||
      !cx_json_string_field(event, "action", &action) || !cx_str_eq(action, CX_LIT("created")))
    return CX_OK; /* not ours to follow up */
  if (!cx_json_field(event, "data", &data)) {
    *err = CX_LIT("todo-followup: the event carries no data");
    return CX_ERR;
  }
  if (!cx_json_string_field(data, "priority", &priority) ||
      !cx_str_eq(priority, CX_LIT("High")))
    return CX_OK;
  if (!cx_json_string_field(data, "description", &description)) description = CX_LIT("");

  cx_str pre = prefix();
  if (pre.len && cx_str_starts_with(description, pre)) return CX_OK; /* already a follow-up */

  cx_buf doc = {0};
  cx_buf_puts(&doc, "{\"description\":");
  cx_buf_json_string(&doc, cx_str_concat(pre, description));
  cx_buf_puts(&doc, ",\"priority\":\"Medium\"}");

  cx_str stored;
  if (cx_insert(CX_LIT("todo"), cx_buf_done(&doc), &stored) != CX_OK) {
    cx_buf msg = {0};
    cx_buf_puts(&msg, "todo-followup: could not insert the follow-up: ");
    cx_buf_str(&msg, stored);
    *err = cx_buf_done(&msg);
    return CX_ERR;
  }

  cx_buf line = {0};
  cx_buf_puts(&line, "todo-followup: followed up high-priority todo ");
  if (!cx_json_string_field(event, "record_id", &id)) id = CX_LIT("?");
  cx_buf_str(&line, id);
  if (cx_json_string_field(stored, "id", &id)) {
    cx_buf_puts(&line, " with todo ");
    cx_buf_str(&line, id);
  }
  cx_log(CX_INFO, cx_buf_done(&line));
  return CX_OK;
}

int cx_on_hook(cx_str event, cx_str entity, cx_str doc, cx_str old, cx_str *out) {
  (void)old;
  cx_str priority;
  *out = doc;
  if (!cx_str_eq(entity, CX_LIT("todo")) || !cx_str_eq(event, CX_LIT("before_insert")) ||
      cx_json_field(doc, "priority", &priority))
    return CX_OK;

  /* Add "priority":"Medium" before the closing brace of the object. */
  cx_str body = cx_str_trim(doc);
  if (body.len < 2 || body.ptr[0] != '{' || body.ptr[body.len - 1] != '}') {
    *out = CX_LIT("todo-followup: the document is not a JSON object");
    return CX_ERR;
  }
  cx_str inner = cx_str_trim((cx_str){body.ptr + 1, body.len - 2});
  cx_buf b = {0};
  cx_buf_put(&b, body.ptr, body.len - 1);
  cx_buf_puts(&b, inner.len ? ",\"priority\":\"Medium\"}" : "\"priority\":\"Medium\"}");
  *out = cx_buf_done(&b);
  return CX_OK;
}

cx_str cx_on_route(cx_str request) {
  cx_str method, path, todos;
  if (!cx_json_string_field(request, "method", &method) ||
      !cx_json_string_field(request, "path", &path) || !cx_str_eq(method, CX_LIT("GET")) ||
      !cx_str_eq(path, CX_LIT("/open")))
    return cx_error_response(404, CX_LIT("no such route in this plugin"));

  if (cx_list(CX_LIT("todo"),
              CX_LIT("{\"filters\":[[\"status\",\"=\",\"Open\"]],\"fields\":[\"id\"],\"limit\":500}"),
              &todos) != CX_OK)
    return cx_error_response(502, todos);
  long open = cx_json_array_len(todos);
  if (open < 0) return cx_error_response(502, CX_LIT("the host answered a list that is not an array"));

  cx_buf body = {0};
  cx_buf_puts(&body, "{\"open\":");
  cx_buf_uint(&body, (uint64_t)open);
  cx_buf_putc(&body, '}');
  return cx_response(200, cx_buf_done(&body));
}
