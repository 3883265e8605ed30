// Labs this process has started to bring up and not yet taken down. A run of
// many labs at once (`mtless demo`) removes whatever is still here when it is
// interrupted or fails, besides each scenario's own teardown: ownership comes
// from this process's own record, never from a name pattern.
const open = new Set<string>();

export const noteLabOpening = (lab: string): void => void open.add(lab);
export const noteLabDown = (lab: string): void => void open.delete(lab);
/** The labs still open, in the order they were opened. */
export const openLabs = (): string[] => [...open];
