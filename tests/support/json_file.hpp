// Golden data in JSON files (written by the independent implementations in tools/ and tests/*/data/).
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "files.hpp"

namespace mla::test {

// The parsed file; throws when it cannot be opened or parsed.
inline nlohmann::json read_json(const std::filesystem::path& path) { return nlohmann::json::parse(read_file(path)); }

}  // namespace mla::test
