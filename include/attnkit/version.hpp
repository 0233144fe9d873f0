#pragma once
/// @file version.hpp  attnkit version, kept in sync with CMakeLists.txt project(VERSION).
#define ATTNKIT_VERSION_MAJOR 0
#define ATTNKIT_VERSION_MINOR 1
#define ATTNKIT_VERSION_PATCH 0
#define ATTNKIT_VERSION_STRING "0.1.0"
