// Per-thread channel workspaces; see channel_workspace.hpp.
#include "channel_workspace.hpp"

namespace simdnorm::bindings {
namespace {

struct ThreadWorkspace {
    ChannelWorkspace workspace;
    bool leased = false;
};

ThreadWorkspace& this_thread_workspace() {
    thread_local ThreadWorkspace t;
    return t;
}

}  // namespace

WorkspaceLease::WorkspaceLease(std::size_t channels) {
    ThreadWorkspace& t = this_thread_workspace();
    if (!t.leased && channels <= kKeptChannels) {
        t.leased = true;
        workspace_ = &t.workspace;
    } else {
        owned_ = std::make_unique<ChannelWorkspace>();
        workspace_ = owned_.get();
    }
}

WorkspaceLease::~WorkspaceLease() {
    if (!owned_) this_thread_workspace().leased = false;
}

}  // namespace simdnorm::bindings
