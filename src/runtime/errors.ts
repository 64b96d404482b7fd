/**
 * A state the model itself forbids: a message an actor has no transition for, a send to an unknown actor,
 * or a combination the real code treats as impossible. Distinct from a *failure the model reaches*
 * (a guest panic, KVM_BUG_ON), which is an outcome recorded in the world.
 */
export class ModelBug extends Error {
  override name = 'ModelBug';
}
