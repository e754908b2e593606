// The system libzstd (Debian/Ubuntu: libzstd-dev; Fedora: libzstd-devel; macOS: brew install zstd). A build
// without it stops here with one line saying so, not with "'zstd.h' file not found".
#if __has_include(<zstd.h>)
#include <zstd.h>
#else
#error "hcore needs the system libzstd: install libzstd-dev and pkg-config (the README's first line)"
#endif
