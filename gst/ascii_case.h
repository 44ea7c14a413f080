/* gst-mediamtx: ASCII case folding for protocol tokens (URL schemes, HTTP header names, Link
 * parameters). Unlike std::tolower it does not depend on the process locale. */
#pragma once

#include <glib.h>

#include <string>

namespace gstmtx {

inline std::string ascii_lower(std::string s) {
  for (char &c : s)
    c = g_ascii_tolower(c);
  return s;
}

}  // namespace gstmtx
