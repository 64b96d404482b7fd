/**
 * The architectural label of a delivered message, exactly as `tdxsim run` prints it after the actors:
 * the name plus the kind's suffix (`EPT_VIOLATION (TD exit)`, `TDG.VP.VEINFO.GET (return)`). It is the
 * CLI formatter's own function, so the exports, the inspector and the terminal never disagree.
 */
export { messageLabel } from '../session/format.ts';
