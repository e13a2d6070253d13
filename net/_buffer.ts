/** Relay buffers start at this size (bytes), so an idle connection holds little memory. */
export const RELAY_BUFFER_MIN = 4 * 1024;

/** Relay buffers double while reads fill them, up to this size (bytes), for bulk flows. */
export const RELAY_BUFFER_MAX = 64 * 1024;
