/**
 * Resident LoRA adapters: at most `maxLoras` at a time, least recently used first out. A step whose
 * batch needs an adapter that is not resident loads it (and pays the load time).
 */
export class LoraSlots {
  /** Resident adapters, least recently used first. */
  private resident: string[] = [];
  loads = 0;

  constructor(readonly maxLoras: number) {}

  /** Makes every adapter of `needed` (at most `maxLoras`) resident; returns how many had to be loaded. */
  activate(needed: ReadonlySet<string>): number {
    let loaded = 0;
    for (const name of needed) {
      const at = this.resident.indexOf(name);
      if (at >= 0) {
        this.resident.splice(at, 1);
      } else {
        loaded++;
        if (this.resident.length >= this.maxLoras) {
          const victim = this.resident.findIndex((r) => !needed.has(r));
          this.resident.splice(victim >= 0 ? victim : 0, 1);
        }
      }
      this.resident.push(name);
    }
    this.loads += loaded;
    return loaded;
  }

  /** Resident adapters, least recently used first. */
  get loaded(): readonly string[] {
    return this.resident;
  }
}
