#include "library_preload.h"

#include <cstdint>
#include <cstring>
#include <set>

#if defined(__linux__) && defined(__GLIBC__)
#define GSTMTX_LIBRARY_PRELOAD 1
#include <dlfcn.h>
#include <elf.h>
#include <endian.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#endif

namespace gstmtx {

#ifdef GSTMTX_LIBRARY_PRELOAD
namespace {

bool read_at(int fd, void *buf, size_t size, off_t offset) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, static_cast<char *>(buf) + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

template <typename Ehdr, typename Phdr, typename Dyn>
bool read_dynamic(int fd, ElfDependencies *out) {
  Ehdr header;
  if (!read_at(fd, &header, sizeof header, 0) || header.e_phentsize != sizeof(Phdr) || header.e_phnum == 0)
    return false;
  std::vector<Phdr> segments(header.e_phnum);
  if (!read_at(fd, segments.data(), sizeof(Phdr) * segments.size(), static_cast<off_t>(header.e_phoff)))
    return false;
  const Phdr *dynamic = nullptr;
  for (const Phdr &p : segments)
    if (p.p_type == PT_DYNAMIC)
      dynamic = &p;
  const uint64_t dynamic_size = dynamic ? dynamic->p_filesz : 0;
  if (dynamic_size < sizeof(Dyn) || dynamic_size > (1u << 20))
    return false;
  std::vector<Dyn> entries(dynamic_size / sizeof(Dyn));
  if (!read_at(fd, entries.data(), sizeof(Dyn) * entries.size(), static_cast<off_t>(dynamic->p_offset)))
    return false;
  uint64_t strtab = 0, strsz = 0;
  std::vector<uint64_t> needed;
  int64_t rpath = -1, runpath = -1;
  for (const Dyn &d : entries) {
    if (d.d_tag == DT_NULL)
      break;
    if (d.d_tag == DT_STRTAB)
      strtab = d.d_un.d_ptr;
    else if (d.d_tag == DT_STRSZ)
      strsz = d.d_un.d_val;
    else if (d.d_tag == DT_NEEDED)
      needed.push_back(d.d_un.d_val);
    else if (d.d_tag == DT_RPATH)
      rpath = static_cast<int64_t>(d.d_un.d_val);
    else if (d.d_tag == DT_RUNPATH)
      runpath = static_cast<int64_t>(d.d_un.d_val);
  }
  if (strsz == 0 || strsz > (16u << 20))
    return false;
  /* DT_STRTAB is an address: the loadable segment that holds it says where it is in the file */
  int64_t strings_at = -1;
  for (const Phdr &p : segments)
    if (p.p_type == PT_LOAD && strtab >= p.p_vaddr && strtab + strsz <= p.p_vaddr + p.p_filesz)
      strings_at = static_cast<int64_t>(p.p_offset + (strtab - p.p_vaddr));
  if (strings_at < 0)
    return false;
  std::string strings(strsz, '\0');
  if (!read_at(fd, strings.data(), strsz, static_cast<off_t>(strings_at)))
    return false;
  auto string_at = [&](uint64_t offset) {
    return offset < strsz ? std::string(strings.data() + offset, strnlen(strings.data() + offset, strsz - offset))
                          : std::string();
  };
  for (uint64_t offset : needed)
    out->needed.push_back(string_at(offset));
  if (rpath >= 0)
    out->rpath = string_at(static_cast<uint64_t>(rpath));
  if (runpath >= 0)
    out->runpath = string_at(static_cast<uint64_t>(runpath));
  out->machine = header.e_machine;
  return true;
}

std::string directory_of(const std::string &path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::string canonical(const std::string &path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) ? std::string(resolved) : std::string();
}

/* One library on the way from the plugin: its file and what it needs. */
struct Node {
  std::string path;
  ElfDependencies deps;
  const Node *loader; /* the library that needs this one; nullptr for the plugin */
};

class Preloader {
 public:
  explicit Preloader(const ElfDependencies &plugin) : elf_class_(plugin.elf_class), machine_(plugin.machine) {
    if (const char *env = getenv("LD_LIBRARY_PATH"))
      library_path_ = env;
    std::ifstream in("/etc/ld.so.cache", std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    cache_ = bytes.str();
    /* the executable's DT_RPATH is searched too (for libraries whose object has no DT_RUNPATH) */
    ElfDependencies exe;
    if (read_elf_dependencies("/proc/self/exe", &exe) && exe.runpath.empty())
      executable_rpath_ = exe.rpath;
    executable_dir_ = directory_of(canonical("/proc/self/exe"));
  }

  /* Loads what `node` needs, deepest first (not `node` itself). */
  void load_needed(const Node &node, int depth) {
    if (depth > 32)
      return;
    for (const std::string &soname : node.deps.needed) {
      if (soname.empty() || soname.find('/') != std::string::npos || !done_.insert(soname).second)
        continue;
      if (void *already = dlopen(soname.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
        dlclose(already);
        continue;
      }
      Node child{locate(soname, node), {}, &node};
      if (child.path.empty() || !read_elf_dependencies(child.path, &child.deps))
        continue; /* left to the plugin's own load */
      load_needed(child, depth + 1);
      if (dlopen(child.path.c_str(), RTLD_NOW | RTLD_LOCAL))
        ++loaded_;
    }
  }

  int loaded() const { return loaded_; }

 private:
  enum class Search { Found, NotHere, Unsure };

  /* Where the dynamic loader would find `soname` needed by `needing`, or "" when that is not
   * certain. The loader's order: DT_RPATH of the object and the objects that loaded it (when the
   * object has no DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, /etc/ld.so.cache, default directories. */
  std::string locate(const std::string &soname, const Node &needing) {
    std::string path;
    auto search = [&](const std::string &list, const Node *origin) {
      return list.empty() ? Search::NotHere : search_path_list(list, origin, soname, &path);
    };
    Search s = Search::NotHere;
    if (needing.deps.runpath.empty()) {
      for (const Node *n = &needing; n && s == Search::NotHere; n = n->loader)
        s = n->deps.runpath.empty() ? search(n->deps.rpath, n) : Search::NotHere;
      if (s == Search::NotHere && !executable_rpath_.empty())
        s = search_path_list(executable_rpath_, nullptr, soname, &path);
    }
    if (s == Search::NotHere)
      s = search(library_path_, nullptr);
    if (s == Search::NotHere)
      s = search(needing.deps.runpath, &needing);
    if (s == Search::NotHere)
      s = search_cache(soname, &path);
    return s == Search::Found ? path : std::string();
  }

  Search search_path_list(const std::string &list, const Node *origin, const std::string &soname, std::string *path) {
    std::string dirs = list;
    for (const char *token : {"${ORIGIN}", "$ORIGIN"}) {
      for (size_t at; (at = dirs.find(token)) != std::string::npos;) {
        const std::string dir = origin ? directory_of(canonical(origin->path)) : executable_dir_;
        dirs.replace(at, strlen(token), dir);
      }
    }
    if (dirs.find('$') != std::string::npos)
      return Search::Unsure; /* $LIB, $PLATFORM: the loader's own values */
    size_t start = 0;
    while (start <= dirs.size()) {
      size_t end = dirs.find_first_of(":;", start);
      if (end == std::string::npos)
        end = dirs.size();
      const std::string dir = dirs.substr(start, end - start);
      start = end + 1;
      if (dir.empty() || dir[0] != '/' || access((dir + "/glibc-hwcaps").c_str(), F_OK) == 0)
        return Search::Unsure; /* the current directory, or variants per CPU level */
      const std::string candidate = dir + "/" + soname;
      if (access(candidate.c_str(), F_OK) == 0 && fits(candidate)) {
        *path = candidate;
        return Search::Found;
      }
    }
    return Search::NotHere;
  }

  Search search_cache(const std::string &soname, std::string *path) {
    bool variants = false;
    std::set<std::string> found;
    for (const std::string &candidate : ld_cache_paths(cache_, soname, &variants))
      if (fits(candidate))
        found.insert(canonical(candidate));
    if (variants || found.size() != 1 || found.begin()->empty())
      return found.empty() && !variants ? Search::NotHere : Search::Unsure;
    *path = *found.begin();
    return Search::Found;
  }

  /* an ELF library for this process (the loader skips others) */
  bool fits(const std::string &path) const {
    ElfDependencies d;
    return read_elf_dependencies(path, &d) && d.elf_class == elf_class_ && d.machine == machine_;
  }

  int elf_class_, machine_;
  std::string library_path_, cache_, executable_rpath_, executable_dir_;
  std::set<std::string> done_;
  int loaded_ = 0;
};

}  // namespace

bool read_elf_dependencies(const std::string &path, ElfDependencies *out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  unsigned char ident[EI_NIDENT];
  bool ok = read_at(fd, ident, sizeof ident, 0) && memcmp(ident, ELFMAG, SELFMAG) == 0 &&
            ident[EI_DATA] == (__BYTE_ORDER == __LITTLE_ENDIAN ? ELFDATA2LSB : ELFDATA2MSB);
  if (ok) {
    *out = ElfDependencies();
    out->elf_class = ident[EI_CLASS];
    if (ident[EI_CLASS] == ELFCLASS64)
      ok = read_dynamic<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(fd, out);
    else if (ident[EI_CLASS] == ELFCLASS32)
      ok = read_dynamic<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(fd, out);
    else
      ok = false;
  }
  close(fd);
  return ok;
}

int preload_library_dependencies(const std::string &file) {
  if (getauxval(AT_SECURE))
    return 0; /* set-uid: the loader ignores LD_LIBRARY_PATH and more */
  Node plugin{file, {}, nullptr};
  if (!read_elf_dependencies(file, &plugin.deps))
    return 0;
  Preloader preloader(plugin.deps);
  preloader.load_needed(plugin, 0);
  return preloader.loaded();
}

#else

bool read_elf_dependencies(const std::string &, ElfDependencies *) { return false; }
int preload_library_dependencies(const std::string &) { return 0; }

#endif

std::vector<std::string> ld_cache_paths(const std::string &cache, const std::string &soname, bool *hwcap_variants) {
  /* header: magic "glibc-ld.so.cache" + version "1.1", nlibs, len_strings, flags + 3 padding bytes,
   * extension offset, 3 unused words; then nlibs entries of {int32 flags; uint32 key, value;
   * uint32 osversion; uint64 hwcap}, key and value offsets of strings from the file's start */
  static constexpr char kMagic[] = "glibc-ld.so.cache1.1";
  constexpr size_t kHeader = 48, kEntry = 24;
  std::vector<std::string> paths;
  if (hwcap_variants)
    *hwcap_variants = false;
  if (cache.size() < kHeader || cache.compare(0, sizeof kMagic - 1, kMagic) != 0)
    return paths;
  uint32_t count;
  memcpy(&count, cache.data() + 20, sizeof count);
  if (count > (cache.size() - kHeader) / kEntry)
    return paths;
  auto string_at = [&](uint32_t offset) {
    return offset < cache.size()
               ? std::string(cache.data() + offset, strnlen(cache.data() + offset, cache.size() - offset))
               : std::string();
  };
  for (uint32_t i = 0; i < count; i++) {
    const char *entry = cache.data() + kHeader + i * kEntry;
    uint32_t key, value;
    uint64_t hwcap;
    memcpy(&key, entry + 4, sizeof key);
    memcpy(&value, entry + 8, sizeof value);
    memcpy(&hwcap, entry + 16, sizeof hwcap);
    if (string_at(key) != soname)
      continue;
    if (hwcap != 0 && hwcap_variants)
      *hwcap_variants = true;
    paths.push_back(string_at(value));
  }
  return paths;
}

}  // namespace gstmtx
