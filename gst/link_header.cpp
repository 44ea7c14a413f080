#include "link_header.h"

#include <glib.h>

#include <algorithm>

#include "ascii_case.h"

namespace gstmtx {
namespace {

constexpr std::size_t kMaxHeaderLength = 16 * 1024;

void skip_ws(const std::string &s, std::size_t &i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
    ++i;
}

std::string trim(const std::string &s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

/* Reads a quoted-string at s[i] == '"'; handles backslash escapes. */
bool read_quoted(const std::string &s, std::size_t &i, std::string *out) {
  ++i;
  while (i < s.size()) {
    char c = s[i++];
    if (c == '\\' && i < s.size()) {
      out->push_back(s[i++]);
    } else if (c == '"') {
      return true;
    } else {
      out->push_back(c);
    }
  }
  return false;
}

bool has_control_chars(const std::string &s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

std::string percent_encode(const std::string &s) {
  g_autofree char *out = g_uri_escape_string(s.c_str(), nullptr, FALSE);
  return out ? out : "";
}

}  // namespace

std::string LinkValue::param(const std::string &name) const {
  for (const auto &[key, value] : params)
    if (key == name)
      return value;
  return {};
}

std::vector<LinkValue> parse_link_header(const std::string &header, std::size_t max_entries) {
  std::vector<LinkValue> out;
  const std::string s = header.size() > kMaxHeaderLength ? header.substr(0, kMaxHeaderLength) : header;
  std::size_t i = 0;
  while (i < s.size() && out.size() < max_entries) {
    skip_ws(s, i);
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i >= s.size())
      break;
    LinkValue value;
    bool ok = s[i] == '<';
    if (ok) {
      auto close = s.find('>', i + 1);
      if (close == std::string::npos)
        break; /* unterminated: nothing after it can be trusted */
      value.target = trim(s.substr(i + 1, close - i - 1));
      i = close + 1;
    }
    /* parameters up to the next top-level comma */
    while (i < s.size() && s[i] != ',') {
      skip_ws(s, i);
      if (i >= s.size() || s[i] == ',')
        break;
      if (s[i] != ';') {
        ok = false;
        ++i;
        continue;
      }
      ++i;
      skip_ws(s, i);
      std::size_t name_start = i;
      while (i < s.size() && s[i] != '=' && s[i] != ';' && s[i] != ',')
        ++i;
      std::string name = ascii_lower(trim(s.substr(name_start, i - name_start)));
      std::string val;
      if (i < s.size() && s[i] == '=') {
        ++i;
        skip_ws(s, i);
        if (i < s.size() && s[i] == '"') {
          if (!read_quoted(s, i, &val)) {
            ok = false;
            break;
          }
        } else {
          std::size_t v_start = i;
          while (i < s.size() && s[i] != ';' && s[i] != ',')
            ++i;
          val = trim(s.substr(v_start, i - v_start));
        }
      }
      if (!name.empty() && value.params.size() < 16)
        value.params.emplace_back(name, val);
    }
    if (ok && !value.target.empty() && !has_control_chars(value.target))
      out.push_back(std::move(value));
  }
  return out;
}

bool IceServer::is_turn() const { return url.rfind("turn:", 0) == 0 || url.rfind("turns:", 0) == 0; }

std::string IceServer::to_webrtcbin_uri() const {
  /* stun:host[:port], turn:host[:port][?transport=udp|tcp], turns:... (RFC 7064/7065) */
  auto colon = url.find(':');
  if (colon == std::string::npos)
    return {};
  const std::string scheme = ascii_lower(url.substr(0, colon));
  std::string rest = url.substr(colon + 1);
  if (rest.rfind("//", 0) == 0)
    rest.erase(0, 2);
  if (rest.empty() || has_control_chars(rest) || rest.find_first_of("@/ ") != std::string::npos)
    return {};
  if (scheme == "stun" || scheme == "stuns")
    return "stun://" + rest.substr(0, rest.find('?'));
  if (scheme == "turn" || scheme == "turns") {
    if (username.empty() || credential.empty())
      return {};
    return scheme + "://" + percent_encode(username) + ":" + percent_encode(credential) + "@" + rest;
  }
  return {};
}

std::vector<IceServer> ice_servers_from_link_headers(const std::vector<std::string> &headers) {
  std::vector<IceServer> servers;
  for (const auto &header : headers) {
    for (const auto &link : parse_link_header(header)) {
      g_auto(GStrv) rels = g_strsplit(ascii_lower(link.param("rel")).c_str(), " ", -1);
      if (!g_strv_contains(rels, "ice-server"))
        continue;
      IceServer server{link.target, link.param("username"), link.param("credential")};
      if (!server.to_webrtcbin_uri().empty() && servers.size() < 16)
        servers.push_back(std::move(server));
    }
  }
  return servers;
}

}  // namespace gstmtx
