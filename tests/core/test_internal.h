// Included by the core unit tests: the core's internal declarations (defined in core_unity.cpp).
#pragma once
#define SPACES_CORE_TU 1
#include "../../sdk/src/internal.h"
#include <gtest/gtest.h>
using namespace spaces_core;
