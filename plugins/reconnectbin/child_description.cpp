/* gst-mediamtx: reconnectbin's child description.
 *
 * Every (re)start builds a fresh child instance from one description: the `child` property, or
 * the description made once (NULL->READY) from elements added to the bin directly (factory,
 * name, properties that differ from their defaults, links in order). The bin's ghost pads are
 * made from the first child and re-targeted at every later one. The summary (factory names only)
 * is what users see in status messages and stats: a description may carry a URL with a password.
 */
#include "reconnectbin_private.h"

#include <algorithm>

#define GST_CAT_DEFAULT gst_reconnect_bin_debug


/* Turns children added directly (gst-launch bin syntax) into a description, then removes them.
 * Called from the application thread on NULL->READY. */
bool reconnect_bin_adopt_children(GstMtxReconnectBin *self, std::string *description, std::string *error,
                                         std::vector<GstPad *> *peers) {
  std::vector<GstElement *> elements; /* in the order they were added */
  GST_OBJECT_LOCK(self);
  for (GList *l = GST_BIN_CHILDREN(self); l; l = l->next)
    elements.insert(elements.begin(), GST_ELEMENT(gst_object_ref(l->data)));
  GST_OBJECT_UNLOCK(self);
  if (elements.empty()) {
    *error = "reconnectbin has no child: set the child property (e.g. child=\"videotestsrc is-live=true\") or "
             "add elements to the bin";
    return false;
  }
  /* order: follow the links from each chain's head, so a capsfilter gst-launch added for a
   * filtered link lands between its neighbours */
  auto peer_element = [](GstElement *element, bool src_side) -> GstElement * {
    GstElement *found = nullptr;
    g_autoptr(GstIterator) it = src_side ? gst_element_iterate_src_pads(element) : gst_element_iterate_sink_pads(element);
    GValue item = G_VALUE_INIT;
    while (!found && gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      g_autoptr(GstPad) peer = gst_pad_get_peer(GST_PAD(g_value_get_object(&item)));
      if (peer)
        found = gst_pad_get_parent_element(peer);
      g_value_reset(&item);
    }
    g_value_unset(&item);
    return found; /* transfer full */
  };
  {
    std::vector<GstElement *> ordered;
    auto seen = [&](GstElement *e) { return std::find(ordered.begin(), ordered.end(), e) != ordered.end(); };
    auto member = [&](GstElement *e) { return std::find(elements.begin(), elements.end(), e) != elements.end(); };
    for (GstElement *head : elements) {
      g_autoptr(GstElement) upstream = peer_element(head, false);
      if (upstream && member(upstream))
        continue;
      for (GstElement *cur = head; cur && member(cur) && !seen(cur);) {
        ordered.push_back(cur);
        g_autoptr(GstElement) next = peer_element(cur, true);
        cur = next;
      }
    }
    for (GstElement *e : elements)
      if (!seen(e))
        ordered.push_back(e);
    elements.swap(ordered);
  }
  auto linked_to = [](GstElement *from, GstElement *to, bool *any_linked_src, bool *to_linked_sink) {
    bool found = false;
    g_autoptr(GstIterator) it = gst_element_iterate_src_pads(from);
    GValue item = G_VALUE_INIT;
    while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      GstPad *pad = GST_PAD(g_value_get_object(&item));
      g_autoptr(GstPad) peer = gst_pad_get_peer(pad);
      if (peer) {
        *any_linked_src = true;
        g_autoptr(GstElement) owner = gst_pad_get_parent_element(peer);
        if (owner == to)
          found = true;
      }
      g_value_reset(&item);
    }
    g_value_unset(&item);
    *to_linked_sink = false;
    g_autoptr(GstIterator) sit = gst_element_iterate_sink_pads(to);
    while (gst_iterator_next(sit, &item) == GST_ITERATOR_OK) {
      if (gst_pad_is_linked(GST_PAD(g_value_get_object(&item))))
        *to_linked_sink = true;
      g_value_reset(&item);
    }
    g_value_unset(&item);
    return found;
  };

  std::string out;
  bool ok = true;
  for (size_t i = 0; i < elements.size() && ok; ++i) {
    GstElement *element = elements[i];
    GstElementFactory *factory = gst_element_get_factory(element);
    if (!factory) {
      *error = std::string("cannot rebuild child ") + GST_OBJECT_NAME(element) +
               ": it has no factory; use the child property instead";
      ok = false;
      break;
    }
    if (i > 0) {
      bool prev_linked_src = false, linked_sink = false;
      bool linked = linked_to(elements[i - 1], element, &prev_linked_src, &linked_sink);
      /* linked, or both dangling (a delayed link gst-launch makes when a pad appears) */
      out += (linked || (!prev_linked_src && !linked_sink)) ? " ! " : "  ";
    }
    out += GST_OBJECT_NAME(factory);
    out += std::string(" name=") + GST_OBJECT_NAME(element);
    guint n_props = 0;
    g_autofree GParamSpec **props = g_object_class_list_properties(G_OBJECT_GET_CLASS(element), &n_props);
    for (guint p = 0; p < n_props; ++p) {
      GParamSpec *pspec = props[p];
      if ((pspec->flags & G_PARAM_READWRITE) != G_PARAM_READWRITE || g_str_equal(pspec->name, "name") ||
          g_str_equal(pspec->name, "parent"))
        continue;
      GValue v = G_VALUE_INIT;
      g_value_init(&v, pspec->value_type);
      g_object_get_property(G_OBJECT(element), pspec->name, &v);
      const bool null_string = G_VALUE_HOLDS_STRING(&v) && g_value_get_string(&v) == nullptr;
      if (!null_string && !g_param_value_defaults(pspec, &v)) {
        g_autofree char *text = gst_value_serialize(&v);
        if (!text) {
          GST_WARNING_OBJECT(self, "property %s of %s cannot be serialized and is not kept across restarts",
                             pspec->name, GST_OBJECT_NAME(element));
        } else {
          g_autofree char *escaped = g_strescape(text, nullptr);
          out += std::string(" ") + pspec->name + "=\"" + escaped + "\"";
        }
      }
      g_value_unset(&v);
    }
  }
  if (ok) {
    /* gst-launch links such a bin through ghost pads of its own: remember their peers, the
     * bin's own pads take over those links */
    std::vector<GstPad *> foreign;
    GST_OBJECT_LOCK(self);
    for (GList *l = GST_ELEMENT_PADS(self); l; l = l->next)
      if (l->data != self->priv->src.ghost && l->data != self->priv->sink.ghost)
        foreign.push_back(GST_PAD(gst_object_ref(l->data)));
    GST_OBJECT_UNLOCK(self);
    for (GstPad *pad : foreign) {
      GstPad *peer = gst_pad_get_peer(pad);
      if (peer) {
        if (GST_PAD_IS_SRC(pad))
          gst_pad_unlink(pad, peer);
        else
          gst_pad_unlink(peer, pad);
        peers->push_back(peer);
      }
      gst_element_remove_pad(GST_ELEMENT(self), pad);
      gst_object_unref(pad);
    }
    for (GstElement *element : elements) {
      gst_element_set_state(element, GST_STATE_NULL);
      gst_bin_remove(GST_BIN(self), element);
    }
    *description = out;
    GST_INFO_OBJECT(self, "children added directly are rebuilt from a description of: %s",
                    reconnect_bin_summarize(out).c_str());
  }
  for (GstElement *element : elements)
    gst_object_unref(element);
  return ok;
}

/* Factory names of the description, without properties (no URL or password leaks). */
std::string reconnect_bin_summarize(const std::string &description) {
  std::string out;
  g_auto(GStrv) links = g_strsplit(description.c_str(), "!", -1);
  for (char **link = links; *link; ++link) {
    g_autofree char *trimmed = g_strstrip(g_strdup(*link));
    std::string first(trimmed);
    first = first.substr(0, first.find_first_of(" \t\n"));
    if (first.empty() || first.find('=') != std::string::npos)
      continue;
    if (!out.empty())
      out += " ! ";
    out += first;
  }
  return out;
}

/* Any thread: whether the first element of `description` has a sink pad template, i.e. whether
 * the child can take input at all. */
static bool reconnect_bin_first_element_takes_input(const std::string &description) {
  const std::string summary = reconnect_bin_summarize(description);
  const std::string first = summary.substr(0, summary.find(' '));
  g_autoptr(GstElementFactory) factory = gst_element_factory_find(first.c_str());
  if (!factory)
    return true; /* not a plain element (a bin syntax or a caps string): keep what parse found */
  for (const GList *l = gst_element_factory_get_static_pad_templates(factory); l; l = l->next) {
    auto *templ = static_cast<const GstStaticPadTemplate *>(l->data);
    if (templ->direction == GST_PAD_SINK)
      return true;
  }
  return false;
}

/* Application or control thread: a child such as "rtspclientsink ..." only has request pads,
 * which gst_parse_bin_from_description does not ghost: request one (sink first) and ghost it
 * onto `child` as "sink" or "src". */
static void reconnect_bin_ghost_request_pad(GstBin *child) {
  for (GstPadDirection direction : {GST_PAD_SINK, GST_PAD_SRC}) {
    GST_OBJECT_LOCK(child);
    std::vector<GstElement *> elements;
    for (GList *l = GST_BIN_CHILDREN(child); l; l = l->next)
      elements.push_back(GST_ELEMENT(gst_object_ref(l->data)));
    GST_OBJECT_UNLOCK(child);
    bool done = false;
    for (GstElement *element : elements) {
      for (GList *l = gst_element_class_get_pad_template_list(GST_ELEMENT_GET_CLASS(element)); l && !done;
           l = l->next) {
        GstPadTemplate *templ = GST_PAD_TEMPLATE(l->data);
        if (GST_PAD_TEMPLATE_PRESENCE(templ) != GST_PAD_REQUEST || GST_PAD_TEMPLATE_DIRECTION(templ) != direction)
          continue;
        GstPad *pad = gst_element_request_pad(element, templ, nullptr, nullptr);
        if (!pad)
          continue;
        GstPad *ghost = gst_ghost_pad_new(direction == GST_PAD_SINK ? "sink" : "src", pad);
        gst_object_unref(pad); /* the element keeps its request pad until it is destroyed */
        gst_element_add_pad(GST_ELEMENT(child), ghost);
        done = true;
      }
    }
    for (GstElement *element : elements)
      gst_object_unref(element);
    if (done)
      return;
  }
}

/* GObject/state-change thread, or the control thread. Builds a fresh child instance from the
 * description, adds it (state locked: we drive it) and ghosts/re-targets its pads. */
bool reconnect_bin_build_child(GstMtxReconnectBin *self, std::string *error) {
  ReconnectBinPrivate *priv = self->priv;
  std::string description;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    description = priv->settings.child_description;
  }
  if (description.empty()) {
    *error = "the child property is empty";
    return false;
  }
  GError *err = nullptr;
  GstElement *child = gst_parse_bin_from_description_full(description.c_str(), TRUE, nullptr,
                                                          GST_PARSE_FLAG_NONE, &err);
  if (!child) {
    /* the summary, not the description: a location may carry a password */
    *error = std::string("cannot build child \"") + reconnect_bin_summarize(description) +
             "\": " + (err ? err->message : "unknown error") + "; check the element names and properties";
    g_clear_error(&err);
    return false;
  }
  if (err) {
    GST_WARNING_OBJECT(self, "child description: %s", err->message);
    g_clear_error(&err);
  }
  g_autoptr(GstPad) child_src = gst_element_get_static_pad(child, "src");
  g_autoptr(GstPad) child_sink = gst_element_get_static_pad(child, "sink");
  if (child_sink && !reconnect_bin_first_element_takes_input(description)) {
    /* e.g. "rtspsrc ! rtph264depay": the depayloader's sink pad was unlinked only until the
     * source's pad appears (a delayed link); it is not an input of the child */
    gst_element_remove_pad(child, child_sink);
    gst_clear_object(&child_sink);
  }
  if (!child_src && !child_sink) {
    reconnect_bin_ghost_request_pad(GST_BIN(child));
    child_sink = gst_element_get_static_pad(child, "sink");
    child_src = gst_element_get_static_pad(child, "src");
  }
  if (!child_src && !child_sink) {
    gst_object_unref(gst_object_ref_sink(child));
    *error = std::string("child \"") + reconnect_bin_summarize(description) +
             "\" has no unlinked static pad; end it with an element that has an always pad (e.g. \"! queue\")";
    return false;
  }
  gst_element_set_locked_state(child, TRUE);

  GstElement *old = nullptr;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    old = priv->child;
    priv->child = nullptr;
  }
  if (old) {
    gst_element_set_state(old, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), old);
  }
  if (!gst_bin_add(GST_BIN(self), child)) {
    *error = "cannot add the child to the bin";
    return false;
  }

  if (child_src) {
    if (!priv->src.ghost) {
      g_autoptr(GstPadTemplate) templ = gst_static_pad_template_get(&reconnect_bin_src_template);
      GstPad *ghost = gst_ghost_pad_new_from_template("src", child_src, templ);
      priv->src.ghost = ghost;
      priv->src.internal = GST_PAD(gst_proxy_pad_get_internal(GST_PROXY_PAD(ghost)));
      gst_pad_set_query_function(ghost, reconnect_bin_src_query);
      gst_pad_set_element_private(priv->src.internal, self);
      gst_pad_set_event_function(priv->src.internal, reconnect_bin_src_internal_event);
      gst_pad_add_probe(priv->src.internal,
                        static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                                     GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                        reconnect_bin_src_probe, self, nullptr);
      gst_pad_set_active(ghost, GST_STATE(self) >= GST_STATE_PAUSED);
      gst_element_add_pad(GST_ELEMENT(self), ghost);
    } else {
      gst_ghost_pad_set_target(GST_GHOST_PAD(priv->src.ghost), child_src);
    }
  } else if (priv->src.ghost) {
    GST_WARNING_OBJECT(self, "the new child has no src pad: the bin's src pad stays unconnected");
  }
  if (child_sink) {
    if (!priv->sink.ghost) {
      g_autoptr(GstPadTemplate) templ = gst_static_pad_template_get(&reconnect_bin_sink_template);
      GstPad *ghost = gst_ghost_pad_new_from_template("sink", child_sink, templ);
      priv->sink.ghost = ghost;
      gst_pad_set_chain_function(ghost, reconnect_bin_sink_chain);
      gst_pad_set_chain_list_function(ghost, reconnect_bin_sink_chain_list);
      gst_pad_set_event_function(ghost, reconnect_bin_sink_event);
      gst_pad_set_query_function(ghost, reconnect_bin_sink_query);
      gst_pad_set_active(ghost, GST_STATE(self) >= GST_STATE_PAUSED);
      gst_element_add_pad(GST_ELEMENT(self), ghost);
    } else {
      gst_ghost_pad_set_target(GST_GHOST_PAD(priv->sink.ghost), child_sink);
    }
  }

  std::lock_guard<std::mutex> guard(priv->lock);
  priv->child = child;
  priv->child_fresh = true;
  priv->summary = reconnect_bin_summarize(description);
  priv->build_error.clear();
  priv->controller.set_transport(priv->summary);
  return true;
}
