// doctest's generated main(): filters (--test-suite=...) come from the ctest command lines.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
