"""The runtime's seams, one module each: what it needs below (the event log), what it offers
and needs around it (socket events in, socket output out, auto-responses, the node's
interface to its front ends), and the records and errors that cross them."""
