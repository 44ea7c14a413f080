/* gst-mediamtx: loading a plugin's shared libraries one at a time, before GStreamer loads the
 * plugin.
 *
 * GStreamer loads a plugin with one dlopen(RTLD_NOW) of its file, which maps and relocates the
 * whole tree of libraries it needs in one go: for libav's plugin 176 libraries, 90-190 ms here.
 * glibc holds its loader locks for all of it, and every pthread_create in the process waits for
 * them (the new thread's TLS is set up under the same lock): in a fresh viewer the streaming thread
 * carrying the first packets makes the jitter buffer's threads and waited ~70 ms for libav's load
 * (docs/benchmarks.md, "Where a first frame's time goes"). Loading the libraries one by one,
 * dependencies first, holds the lock for one library at a time (a few ms) and, as each library is
 * relocated against its own dependencies only instead of the whole tree, takes a third of the time.
 *
 * Only libraries the dynamic loader would find in the same place are loaded ahead: the search
 * follows the loader's order (DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH, /etc/ld.so.cache) and leaves
 * out any library it cannot place for certain (several candidates, hardware-capability variants,
 * path tokens other than $ORIGIN, a set-uid process); those are then loaded with the plugin, as
 * before. glibc on Linux only; elsewhere nothing is loaded ahead.
 */
#pragma once

#include <string>
#include <vector>

namespace gstmtx {

/* What an ELF file's dynamic section says about the libraries it needs. */
struct ElfDependencies {
  std::vector<std::string> needed; /* DT_NEEDED, in order */
  std::string rpath;               /* DT_RPATH, "" if none */
  std::string runpath;             /* DT_RUNPATH, "" if none */
  int elf_class = 0;               /* ELFCLASS32 / ELFCLASS64 */
  int machine = 0;                 /* e_machine */
};

/* Reads `path`'s ELF header and dynamic section; false when it is not a readable ELF file of this
 * process's byte order with a dynamic section. */
bool read_elf_dependencies(const std::string &path, ElfDependencies *out);

/* The paths /etc/ld.so.cache (glibc's "glibc-ld.so.cache1.1" format, given as its bytes) lists for
 * `soname`, in the cache's order; *hwcap_variants is set when an entry is for specific hardware
 * capabilities. Empty for any other format. */
std::vector<std::string> ld_cache_paths(const std::string &cache, const std::string &soname,
                                        bool *hwcap_variants = nullptr);

/* Loads the libraries `file` (a plugin) needs that are not loaded yet, one dlopen(RTLD_NOW |
 * RTLD_LOCAL) each, every library after the ones it needs; `file` itself is not loaded. They stay
 * loaded for the process's lifetime, as GStreamer's plugins do. Returns how many were loaded. */
int preload_library_dependencies(const std::string &file);

}  // namespace gstmtx
