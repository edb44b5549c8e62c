// The floor: what a TU with a standard map of strings costs.
#include <string>
#include <unordered_map>

int main() {
    std::unordered_map<std::string, std::string> map;
    map.emplace("key", "value");
    return map.find("key") != map.end() ? 0 : 1;
}
