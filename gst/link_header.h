/* gst-mediamtx: Link header parsing for WHEP/WHIP ICE server configuration (RFC 8288 syntax,
 * rel="ice-server" with username/credential/credential-type attributes, as MediaMTX sends them).
 * Tolerant of hostile input: bounded, never throws, skips what it cannot parse.
 */
#pragma once

#include <string>
#include <vector>

namespace gstmtx {

struct IceServer {
  std::string url;          /* stun:host:port, turn:host:port?transport=udp, turns:... */
  std::string username;
  std::string credential;
  bool is_turn() const;
  /* The form webrtcbin's stun-server / turn-server / add-turn-server take:
   * stun://host:port, turn(s)://user:pass@host:port?transport=... (credentials percent-encoded).
   * Empty when the URL is not a usable stun/turn URL. */
  std::string to_webrtcbin_uri() const;
};

struct LinkValue {
  std::string target;                                  /* between < and > */
  std::vector<std::pair<std::string, std::string>> params; /* names lower-cased, values unquoted */
  std::string param(const std::string &name) const;
};

/* Splits one or more Link header values ("<a>; rel=x, <b>; rel=y") into entries. At most
 * `max_entries` are returned; a malformed entry is skipped. */
std::vector<LinkValue> parse_link_header(const std::string &header, std::size_t max_entries = 32);

/* The ICE servers among Link header values (rel contains "ice-server"). */
std::vector<IceServer> ice_servers_from_link_headers(const std::vector<std::string> &headers);

}  // namespace gstmtx
