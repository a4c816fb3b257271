// Counterfactual edits of a ShapesWorld sample: one object removed, moved or recoloured, and the
// scene drawn again from its description with the same clutter and noise draws, so that the edit is
// exact (nothing else in the image changes, except clutter that the removed object had covered).
#pragma once
#include "data/shapes_world.h"

namespace pivot {

struct SceneEdit {
  enum class Kind { Remove, Move, Recolour } kind = Kind::Remove;
  int object = 0;      // index into the scene's objects
  int dx = 0, dy = 0;  // Move: pixels (kept inside the image)
  int colour = 0;      // Recolour: index into ShapesWorld::colours()
};

// The sample at (split, index) of `world` with `edit` applied. Question and answers stay the
// original's (an edit may make them wrong: that is what it tests); the targets follow their
// objects (a removed target is dropped). Throws naming an object or colour that does not exist.
Sample editedSample(const ShapesWorld& world, Split split, int64_t index, const SceneEdit& edit);

}  // namespace pivot
